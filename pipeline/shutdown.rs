//! Stopping cleanly on SIGTERM and SIGINT (a Kubernetes eviction, Ctrl-C).
//!
//! Reads: the process's signals. Writes: nothing.
//! Never does: kill work itself. Stages look at [`Shutdown`]: they start nothing new once it is
//! requested, give work in flight a grace period, write what is done (judge cache, ledger,
//! parts, the run manifest `interrupted`), release the run lock, and return [`Interrupted`];
//! the command then exits 128 + the signal (130 for SIGINT, 143 for SIGTERM).

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use tokio_util::sync::CancellationToken;

pub const SIGINT: i32 = 2;
pub const SIGTERM: i32 = 15;

/// A stage stopped because a signal asked it to.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("interrupted by {} before the work was done; what was finished is saved", signal_name(*.signal))]
pub struct Interrupted {
    pub signal: i32,
}

impl Interrupted {
    /// 128 + the signal, as shells report a process a signal ended.
    pub fn exit_code(&self) -> u8 {
        u8::try_from(128 + self.signal).unwrap_or(1)
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// Whether a stop was asked for, shared by every stage of the process.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    signal: Arc<AtomicI32>,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Turns SIGTERM and SIGINT into a stop request (on the current tokio runtime). A second
    /// signal after the first ends the process at once.
    pub fn listen(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{SignalKind, signal};
                let (Ok(mut term), Ok(mut int)) = (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                ) else {
                    return;
                };
                loop {
                    let number = tokio::select! {
                        _ = term.recv() => SIGTERM,
                        _ = int.recv() => SIGINT,
                    };
                    if this.is_requested() {
                        std::process::exit(128 + number);
                    }
                    tracing::warn!(
                        "{} received: finishing work in flight, then stopping (again to stop at once)",
                        signal_name(number)
                    );
                    this.request(number);
                }
            }
            #[cfg(not(unix))]
            {
                if tokio::signal::ctrl_c().await.is_ok() {
                    this.request(SIGINT);
                }
            }
        });
    }

    /// Asks for a stop as if `signal` had arrived.
    pub fn request(&self, signal: i32) {
        self.signal.store(signal, Ordering::SeqCst);
        self.token.cancel();
    }

    pub fn is_requested(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once a stop is requested.
    pub async fn requested(&self) {
        self.token.cancelled().await
    }

    /// The stop as an error, once requested.
    pub fn check(&self) -> Result<(), Interrupted> {
        if self.is_requested() {
            Err(Interrupted {
                signal: self.signal.load(Ordering::SeqCst),
            })
        } else {
            Ok(())
        }
    }
}
