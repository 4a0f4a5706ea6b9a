//! The one place AWS clients are built.
//!
//! Region, credentials and endpoints follow the standard chain (`AWS_REGION`, `AWS_PROFILE`,
//! `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`, web identity, ECS/EC2 roles, `credential_process`),
//! overridden by the `[aws]` section of the config. HTTPS uses rustls with ring, the project's only
//! TLS stack. Nothing here logs a secret.
//!
//! Never does: build a client unless a stage needs AWS, so an offline run never probes the
//! instance metadata service.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls;

use crate::config::AwsSettings;

/// Loads the shared SDK configuration (lazy credentials: nothing is fetched until a call needs it).
pub async fn sdk_config(settings: &AwsSettings) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
    if let Some(region) = &settings.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// An S3 client for the warehouse and capture sources.
pub fn s3_client(sdk: &SdkConfig, settings: &AwsSettings) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(settings.s3_force_path_style)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// A Bedrock runtime client for the judge. Its retries are off: the score engine retries itself,
/// with an adaptive rate that must see every throttle.
pub fn bedrock_client(sdk: &SdkConfig, settings: &AwsSettings) -> aws_sdk_bedrockruntime::Client {
    let mut config = aws_sdk_bedrockruntime::config::Builder::from(sdk)
        .retry_config(aws_config::retry::RetryConfig::disabled());
    if let Some(url) = &settings.bedrock_endpoint_url {
        config = config.endpoint_url(url);
    }
    aws_sdk_bedrockruntime::Client::from_conf(config.build())
}

/// A Bedrock control-plane client (batch inference jobs), with the SDK's standard retries.
pub fn bedrock_control_client(sdk: &SdkConfig, settings: &AwsSettings) -> aws_sdk_bedrock::Client {
    let mut config = aws_sdk_bedrock::config::Builder::from(sdk);
    if let Some(url) = &settings.bedrock_endpoint_url {
        config = config.endpoint_url(url);
    }
    aws_sdk_bedrock::Client::from_conf(config.build())
}

/// A CloudWatch client for telemetry and publishing.
pub fn cloudwatch_client(sdk: &SdkConfig) -> aws_sdk_cloudwatch::Client {
    aws_sdk_cloudwatch::Client::new(sdk)
}

type Lazy<T> = std::sync::Arc<tokio::sync::OnceCell<T>>;

/// Clients shared by the stages of one process, built on first use.
#[derive(Debug, Clone)]
pub struct AwsClients {
    settings: AwsSettings,
    sdk: Lazy<SdkConfig>,
    s3: Lazy<aws_sdk_s3::Client>,
    bedrock: Lazy<aws_sdk_bedrockruntime::Client>,
    bedrock_control: Lazy<aws_sdk_bedrock::Client>,
    cloudwatch: Lazy<aws_sdk_cloudwatch::Client>,
}

impl AwsClients {
    pub fn new(settings: AwsSettings) -> AwsClients {
        AwsClients {
            settings,
            sdk: Default::default(),
            s3: Default::default(),
            bedrock: Default::default(),
            bedrock_control: Default::default(),
            cloudwatch: Default::default(),
        }
    }

    async fn sdk(&self) -> &SdkConfig {
        self.sdk.get_or_init(|| sdk_config(&self.settings)).await
    }

    pub async fn s3(&self) -> aws_sdk_s3::Client {
        self.s3
            .get_or_init(|| async { s3_client(self.sdk().await, &self.settings) })
            .await
            .clone()
    }

    pub async fn bedrock_control(&self) -> aws_sdk_bedrock::Client {
        self.bedrock_control
            .get_or_init(|| async { bedrock_control_client(self.sdk().await, &self.settings) })
            .await
            .clone()
    }

    pub async fn cloudwatch(&self) -> aws_sdk_cloudwatch::Client {
        self.cloudwatch
            .get_or_init(|| async { cloudwatch_client(self.sdk().await) })
            .await
            .clone()
    }

    /// The region and endpoint CloudWatch calls go to (`aws` for the service's own), naming a
    /// publish target.
    pub async fn cloudwatch_target(&self) -> (String, String) {
        let sdk = self.sdk().await;
        let region = sdk
            .region()
            .map_or_else(|| "(no region)".to_string(), |r| r.to_string());
        let endpoint = sdk.endpoint_url().unwrap_or("aws").to_string();
        (region, endpoint)
    }

    /// Whether calls can be signed: a region is set and the credential chain yields credentials.
    /// Err: (what is wrong, what to do).
    pub async fn check_credentials(&self) -> Result<(), (String, String)> {
        use aws_credential_types::provider::ProvideCredentials;
        let sdk = self.sdk().await;
        if sdk.region().is_none() {
            return Err((
                "no AWS region is set".into(),
                "set `AWS_REGION` or `[aws] region` in the config".into(),
            ));
        }
        let Some(provider) = sdk.credentials_provider() else {
            return Err((
                "no AWS credentials provider is configured".into(),
                "set AWS credentials (environment, profile, SSO, or an instance/task role)".into(),
            ));
        };
        match provider.provide_credentials().await {
            Ok(_) => Ok(()),
            Err(e) => Err((
                format!(
                    "no AWS credentials could be loaded: {}",
                    crate::util::truncate_utf8(&crate::util::error_chain(&e), 300)
                ),
                "set `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE` (with \
                 `aws sso login` if it is an SSO profile), or run with an instance, task or \
                 IRSA role"
                    .into(),
            )),
        }
    }

    pub async fn bedrock(&self) -> aws_sdk_bedrockruntime::Client {
        self.bedrock
            .get_or_init(|| async { bedrock_client(self.sdk().await, &self.settings) })
            .await
            .clone()
    }
}

/// The error text of an SDK call, with the service's code and message when it sent one.
pub fn sdk_error_text<E>(
    err: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_s3::error::SdkError;
    match err {
        SdkError::ServiceError(service) => {
            let inner = service.err();
            match (inner.code(), inner.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_string(),
                // No error document (a proxy's 503, say): the HTTP status says what happened.
                _ => format!("HTTP {}: {inner}", service.raw().status().as_u16()),
            }
        }
        other => {
            // DisplayErrorContext prints the whole source chain (connection refused, timeout...).
            aws_sdk_s3::error::DisplayErrorContext(other).to_string()
        }
    }
}
