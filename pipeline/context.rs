//! What every stage gets handed: the validated config, the warehouse, lazily built AWS clients and
//! the date the run treats as "today" (injected, so a run for a given night is reproducible).

use chrono::NaiveDate;

use crate::aws::AwsClients;
use crate::config::{Config, DateRange, Location};
use crate::ingest::source::Source;
use crate::score::ProgressMode;
use crate::warehouse::Warehouse;

#[derive(Debug, Clone)]
pub struct Ctx {
    pub config: Config,
    pub aws: AwsClients,
    pub warehouse: Warehouse,
    pub today: NaiveDate,
    /// How long-running stages show progress (a bar on a terminal, log lines otherwise).
    pub progress: ProgressMode,
    /// Stop requests (SIGTERM/SIGINT) the stages look at.
    pub shutdown: crate::shutdown::Shutdown,
    /// How long a writer waits for the warehouse's writer lock (`--wait-lock`); `None`: not at all.
    pub wait_lock: Option<std::time::Duration>,
}

impl Ctx {
    /// Opens the configured warehouse. AWS clients are built only if a location needs them.
    pub async fn new(config: Config, today: NaiveDate) -> Ctx {
        let aws = AwsClients::new(config.aws.clone());
        let warehouse = Warehouse::open(&config.warehouse, &aws).await;
        Ctx {
            config,
            aws,
            warehouse,
            today,
            progress: ProgressMode::Lines,
            shutdown: crate::shutdown::Shutdown::new(),
            wait_lock: None,
        }
    }

    /// Stages of this context stop cleanly on SIGTERM/SIGINT.
    pub fn listening_for_signals(mut self) -> Ctx {
        let shutdown = crate::shutdown::Shutdown::new();
        shutdown.listen();
        self.shutdown = shutdown;
        self
    }

    /// Takes the warehouse's writer lock for `command`, or `shard`'s lock (waiting
    /// `wait_lock`, if set).
    pub async fn writer_lock(
        &self,
        command: &str,
        shard: Option<crate::shard::Shard>,
    ) -> Result<crate::lock::WriterLock, crate::lock::LockError> {
        crate::lock::acquire(
            &self.warehouse,
            &crate::run::new_run_id(),
            command,
            self.wait_lock,
            shard,
        )
        .await
    }

    pub fn with_wait_lock(mut self, wait_lock: Option<std::time::Duration>) -> Ctx {
        self.wait_lock = wait_lock;
        self
    }

    pub fn with_progress(mut self, progress: ProgressMode) -> Ctx {
        self.progress = progress;
        self
    }

    /// The window `run` processes: the configured dates, or yesterday.
    pub fn window(&self) -> DateRange {
        self.config.window.resolve(self.today)
    }

    /// The capture source at `location`. A local root is made absolute, so lineage columns
    /// (`source_uri`) name files unambiguously whatever folder the run started in.
    pub async fn source(&self, location: &Location) -> Source {
        match location {
            Location::Local(root) => Source::Local {
                root: std::fs::canonicalize(root).unwrap_or_else(|_| root.clone()),
            },
            Location::S3 { bucket, prefix } => Source::S3 {
                client: self.aws.s3().await,
                bucket: bucket.clone(),
                prefix: prefix.clone(),
            },
        }
    }
}
