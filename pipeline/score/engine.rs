//! How LLM judge calls are made: paced, bounded, retried, repaired.
//!
//! - [`Pacer`]: a client-side limiter on requests/min and tokens/min. Calls are spaced evenly
//!   (no bursts past the quota). On throttling the rate is halved (at most once per half second,
//!   so one burst of throttles counts once; never below one call per 5 s). Recovery is fast up to
//!   90% of the rate that was throttled (each success gives back 1 call/s, so the pace doubles in
//!   about a second) and slow beyond it (0.1 call/s per success, about 10% per second), so the
//!   pace spends its time just under the server's real limit instead of at half of it.
//! - [`call_with_retries`]: one logical call; a per-call timeout; throttling, 5xx, timeouts and
//!   connection errors are retried with exponential back-off and full jitter; anything else fails
//!   at once.
//! - [`judge_pair`]: one judged pair; an answer that does not validate against the rubric gets one
//!   repair request naming the problem, then is an error with the reason.
//!
//! Concurrency (how many pairs are in flight) is bounded by the caller.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::JudgeSettings;
use crate::judge::protocol::{self, Judgment};
use crate::judge::{CallError, Judge, Reply};
use crate::rubric::Rubric;

/// The slowest pace the pacer falls to, in calls per second.
const MIN_RATE: f64 = 0.2;

/// Calls per second given back per successful call, below and above 90% of the last rate cut.
const FAST_RECOVERY: f64 = 1.0;
const SLOW_RECOVERY: f64 = 0.1;

#[derive(Debug)]
struct PacerState {
    next_request: Instant,
    next_tokens: Instant,
    factor: f64,
    /// The factor at the last cut: the pace known to be too fast.
    cut_from: f64,
    last_cut: Option<Instant>,
}

#[derive(Debug)]
pub struct Pacer {
    requests_per_s: f64,
    tokens_per_s: f64,
    state: Mutex<PacerState>,
}

impl Pacer {
    pub fn new(requests_per_minute: f64, tokens_per_minute: f64) -> Pacer {
        let now = Instant::now();
        Pacer {
            requests_per_s: requests_per_minute / 60.0,
            tokens_per_s: tokens_per_minute / 60.0,
            state: Mutex::new(PacerState {
                next_request: now,
                next_tokens: now,
                factor: 1.0,
                cut_from: 1.0,
                last_cut: None,
            }),
        }
    }

    /// When a call of `tokens` tokens may start; books that slot.
    fn book(&self, tokens: u64, now: Instant) -> Instant {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let request_slot = s.next_request.max(now);
        s.next_request =
            request_slot + Duration::from_secs_f64(1.0 / (self.requests_per_s * s.factor));
        let token_slot = s.next_tokens.max(now);
        s.next_tokens =
            token_slot + Duration::from_secs_f64(tokens as f64 / (self.tokens_per_s * s.factor));
        request_slot.max(token_slot)
    }

    /// Waits for the next slot for a call of about `tokens` tokens.
    pub async fn acquire(&self, tokens: u64) {
        let at = self.book(tokens, Instant::now());
        tokio::time::sleep_until(at.into()).await;
    }

    pub fn on_throttle(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if s.last_cut
            .is_none_or(|t| now.duration_since(t) > Duration::from_millis(500))
        {
            s.cut_from = s.factor;
            s.factor = (s.factor / 2.0).max((MIN_RATE / self.requests_per_s).min(1.0));
            s.last_cut = Some(now);
        }
    }

    pub fn on_success(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let step = if s.factor < 0.9 * s.cut_from {
            FAST_RECOVERY
        } else {
            SLOW_RECOVERY
        };
        s.factor = (s.factor + step / self.requests_per_s).min(1.0);
    }

    /// The share of the configured rate in force now.
    pub fn factor(&self) -> f64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).factor
    }
}

/// Counters of the calls a run made, shared by every task.
#[derive(Debug, Default)]
pub struct CallStats {
    pub calls: AtomicU64,
    pub retries: AtomicU64,
    pub throttled: AtomicU64,
    pub timeouts: AtomicU64,
    pub server_errors: AtomicU64,
    pub repairs: AtomicU64,
    pub input_tokens: AtomicU64,
    pub output_tokens: AtomicU64,
}

impl CallStats {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Stops judging when the judge cannot answer at all: after `after` judgments in a row failed
/// for a reason retries cannot fix ([`CallError::is_fatal`]: refused credentials or access, an
/// unknown model, an invalid request, no connection), it trips and keeps the last cause.
#[derive(Debug)]
pub struct Breaker {
    after: u32,
    in_a_row: u32,
    /// The failure that tripped it, and how many in a row had failed then.
    tripped: Option<(CallError, u32)>,
}

impl Breaker {
    pub fn new(after: u32) -> Breaker {
        Breaker {
            after,
            in_a_row: 0,
            tripped: None,
        }
    }

    /// Books one finished judgment.
    pub fn record(&mut self, outcome: &PairOutcome) {
        match &outcome.call_error {
            Some(e) if e.is_fatal() => {
                self.in_a_row += 1;
                if self.in_a_row >= self.after && self.tripped.is_none() {
                    self.tripped = Some((e.clone(), self.in_a_row));
                }
            }
            _ => self.in_a_row = 0,
        }
    }

    /// The failure that tripped it and how many judgments in a row had failed then, once it has.
    pub fn tripped(&self) -> Option<(&CallError, u32)> {
        self.tripped.as_ref().map(|(e, n)| (e, *n))
    }
}

/// Everything a judge task needs, shared.
#[derive(Debug)]
pub struct Engine {
    pub judge: Judge,
    pub rubric: Rubric,
    pub settings: JudgeSettings,
    pub pacer: Pacer,
    pub stats: CallStats,
}

impl Engine {
    pub fn new(judge: Judge, rubric: Rubric, settings: JudgeSettings) -> Engine {
        Engine {
            pacer: Pacer::new(settings.requests_per_minute, settings.tokens_per_minute),
            judge,
            rubric,
            settings,
            stats: CallStats::default(),
        }
    }

    /// The full-jitter back-off before attempt `attempt + 1` (attempt counts from 1).
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.settings.backoff_initial.as_secs_f64();
        let cap = self.settings.backoff_max.as_secs_f64();
        let ceiling = (base * 2f64.powi(attempt.saturating_sub(1).min(30) as i32)).min(cap);
        Duration::from_secs_f64(ceiling * jitter())
    }
}

/// A uniform number in [0, 1) from the clock and a counter; good enough to spread retries.
fn jitter() -> f64 {
    static SEQ: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let mut x = SEQ.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ nanos;
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// One logical call: paced, timed out, retried. On success also the latency of the attempt
/// that answered.
pub async fn call_with_retries(
    engine: &Engine,
    user_text: &str,
    estimated_tokens: u64,
) -> Result<(Reply, Duration), (String, CallError)> {
    let attempts = engine.settings.max_attempts;
    let mut last = CallError::Rejected("no attempt made".into());
    for attempt in 1..=attempts {
        engine.pacer.acquire(estimated_tokens).await;
        CallStats::add(&engine.stats.calls, 1);
        if attempt > 1 {
            CallStats::add(&engine.stats.retries, 1);
        }
        let started = Instant::now();
        let outcome = tokio::time::timeout(engine.settings.timeout, engine.judge.call(user_text))
            .await
            .unwrap_or_else(|_| {
                Err(CallError::Timeout(format!(
                    "no answer within {:.1}s",
                    engine.settings.timeout.as_secs_f64()
                )))
            });
        match outcome {
            Ok(reply) => {
                engine.pacer.on_success();
                CallStats::add(&engine.stats.input_tokens, reply.input_tokens);
                CallStats::add(&engine.stats.output_tokens, reply.output_tokens);
                return Ok((reply, started.elapsed()));
            }
            Err(e) => {
                match &e {
                    CallError::Throttled(_) => {
                        CallStats::add(&engine.stats.throttled, 1);
                        engine.pacer.on_throttle();
                    }
                    CallError::Timeout(_) => CallStats::add(&engine.stats.timeouts, 1),
                    CallError::Server(_) => CallStats::add(&engine.stats.server_errors, 1),
                    _ => {}
                }
                if !e.is_retryable() {
                    return Err((format!("judge call {e}"), e));
                }
                last = e;
            }
        }
        if attempt < attempts {
            tokio::time::sleep(engine.backoff(attempt)).await;
        }
    }
    Err((
        format!("judge call {last} (gave up after {attempts} attempts)"),
        last,
    ))
}

/// A judged pair, or why it could not be judged.
#[derive(Debug, Clone)]
pub struct PairOutcome {
    pub result: Result<Vec<Judgment>, String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Latency of the call(s) that answered, in milliseconds.
    pub latency_ms: f64,
    /// Why the call failed, when it did (not when the answer did not validate).
    pub call_error: Option<CallError>,
}

/// Judges one pair: a call, and one repair call if the answer does not validate.
pub async fn judge_pair(engine: &Engine, prompt: &str, response: &str) -> PairOutcome {
    judge_text(engine, &|repair| {
        protocol::user_text(prompt, response, repair)
    })
    .await
}

/// Judges one user message built by `make` (given what was wrong with a first answer, for the
/// repair): a call, and one repair call if the answer does not validate against the rubric.
pub async fn judge_text(
    engine: &Engine,
    make: &(dyn Fn(Option<&str>) -> String + Sync),
) -> PairOutcome {
    let mut outcome = PairOutcome {
        result: Err(String::new()),
        input_tokens: 0,
        output_tokens: 0,
        latency_ms: 0.0,
        call_error: None,
    };
    let Some(prompting) = engine.judge.prompting() else {
        outcome.result = Err("not an LLM judge".into());
        return outcome;
    };
    let mut problem: Option<String> = None;
    for round in 0..2 {
        let user = make(problem.as_deref());
        let estimate = prompting.estimate_input_tokens(&user)
            + protocol::estimate_output_tokens(&engine.rubric);
        let (reply, latency) = match call_with_retries(engine, &user, estimate).await {
            Ok(answer) => answer,
            Err((message, error)) => {
                outcome.result = Err(message);
                outcome.call_error = Some(error);
                return outcome;
            }
        };
        outcome.input_tokens += reply.input_tokens;
        outcome.output_tokens += reply.output_tokens;
        outcome.latency_ms += latency.as_secs_f64() * 1000.0;
        let checked = match &reply.tool_input {
            None => Err(format!(
                "the judge answered without calling `{}`: {:?}",
                protocol::TOOL_NAME,
                crate::util::truncate_utf8(reply.text.trim(), 200)
            )),
            Some(input) => protocol::validate(&engine.rubric, input),
        };
        match checked {
            Ok(judgments) => {
                outcome.result = Ok(judgments);
                return outcome;
            }
            Err(p) => {
                if round == 0 {
                    CallStats::add(&engine.stats.repairs, 1);
                }
                problem = Some(p);
            }
        }
    }
    outcome.result = Err(format!(
        "invalid judge output after one repair: {}",
        problem.unwrap_or_default()
    ));
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_spaces_calls_and_adapts() {
        let pacer = Pacer::new(600.0, 1e12); // 10/s
        let now = Instant::now();
        let slots: Vec<Duration> = (0..3).map(|_| pacer.book(1, now) - now).collect();
        assert_eq!(slots[0], Duration::ZERO);
        assert!((slots[1].as_secs_f64() - 0.1).abs() < 1e-6, "{slots:?}");
        assert!((slots[2].as_secs_f64() - 0.2).abs() < 1e-6, "{slots:?}");
        pacer.on_throttle();
        pacer.on_throttle(); // the same burst: counted once
        assert_eq!(pacer.factor(), 0.5);
        // Fast back to 90% of the throttled pace (1 call/s per success at 10/s = +0.1), then slow.
        for _ in 0..4 {
            pacer.on_success();
        }
        assert!((pacer.factor() - 0.9).abs() < 1e-9, "{}", pacer.factor());
        for _ in 0..10 {
            pacer.on_success();
        }
        assert!((pacer.factor() - 1.0).abs() < 1e-9, "{}", pacer.factor());
        // Tokens pace too: 100 tokens/s, a 50-token call takes half a second of budget.
        let pacer = Pacer::new(1e9, 6000.0);
        let now = Instant::now();
        pacer.book(50, now);
        assert!(((pacer.book(50, now) - now).as_secs_f64() - 0.5).abs() < 1e-6);
    }

    #[test]
    fn the_breaker_trips_on_fatal_failures_in_a_row_only() {
        let failed = |e: CallError| PairOutcome {
            result: Err(e.to_string()),
            input_tokens: 0,
            output_tokens: 0,
            latency_ms: 0.0,
            call_error: Some(e),
        };
        let ok = PairOutcome {
            result: Ok(Vec::new()),
            input_tokens: 0,
            output_tokens: 0,
            latency_ms: 0.0,
            call_error: None,
        };
        let mut breaker = Breaker::new(3);
        for _ in 0..2 {
            breaker.record(&failed(CallError::Rejected("AccessDeniedException".into())));
        }
        breaker.record(&ok);
        for _ in 0..2 {
            breaker.record(&failed(CallError::Transport("connection refused".into())));
        }
        // Throttling and server errors are the judge being busy, not down.
        breaker.record(&failed(CallError::Throttled("slow down".into())));
        breaker.record(&failed(CallError::Server("500".into())));
        assert!(breaker.tripped().is_none());
        for _ in 0..3 {
            breaker.record(&failed(CallError::Transport("connection refused".into())));
        }
        assert_eq!(
            breaker.tripped(),
            Some((&CallError::Transport("connection refused".into()), 3))
        );
    }

    #[test]
    fn jitter_is_in_range_and_varies() {
        let draws: Vec<f64> = (0..1000).map(|_| jitter()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        let mean = draws.iter().sum::<f64>() / 1000.0;
        assert!((0.4..0.6).contains(&mean), "{mean}");
    }
}
