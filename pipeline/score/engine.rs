//! How LLM judge calls are made: paced, bounded, retried, repaired.
//!
//! - [`Pacer`]: a client-side limiter on requests/min and tokens/min. Calls are spaced evenly
//!   (no bursts past the quota). It tells throttling caused by its own rate from throttling the
//!   service does for its own reasons (Bedrock also throttles for capacity, at any rate): a cut
//!   halves the rate actually achieved, then the outcomes of the calls booked after it are
//!   compared with those before. If the share of calls that got through rose (x1.4 or more:
//!   the same successes at half the calls) or the throttle share at least halved, the rate
//!   caused it and the cut stays, recovering
//!   fast up to 90% of the rate that was throttled and slowly beyond it. If it did not, the
//!   throttling is the service's: the rate goes back up, and the share seen becomes the
//!   background level (tracked down as it fades), below which throttles cut nothing more.
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

/// What a cut is judged on: the outcomes of at least this many calls booked after it, over at
/// least this long (successes per second need a second to show at high rates).
const PROBE_CALLS: u64 = 40;
const PROBE_TIME: Duration = Duration::from_millis(500);

/// A cut "helped" when the share of calls that got through rose by this factor.
const HELPED: f64 = 1.4;

/// How long a probe's finding that the rate causes the throttling holds (then the next cut
/// probes again: the service may have started throttling for its own reasons meanwhile).
const RECHECK: Duration = Duration::from_secs(30);

/// Throttle share above the background level that still counts as the pacer's doing.
const MARGIN: f64 = 0.1;

/// Weight of one outcome in the running throttle share (about the last 100 calls: at a 30%
/// background its noise is 0.03, a third of [`MARGIN`]).
const EWMA: f64 = 0.01;

/// Outcomes of the calls booked in one regime of the pacer.
#[derive(Debug, Clone, Copy)]
struct Epoch {
    id: u64,
    started: Instant,
    booked: u64,
    calls: u64,
    throttled: u64,
}

impl Epoch {
    fn new(id: u64, now: Instant) -> Epoch {
        Epoch {
            id,
            started: now,
            booked: 0,
            calls: 0,
            throttled: 0,
        }
    }

    /// Share of the calls that got through (not throttled).
    fn passed(&self) -> f64 {
        if self.calls == 0 {
            1.0
        } else {
            1.0 - self.throttled as f64 / self.calls as f64
        }
    }
}

/// A cut under evaluation.
#[derive(Debug, Clone, Copy)]
struct Probe {
    /// The factor before the cut.
    from: f64,
    /// The share of calls that got through before it.
    passed_before: f64,
}

#[derive(Debug)]
struct PacerState {
    next_request: Instant,
    next_tokens: Instant,
    factor: f64,
    /// The factor at the last cut the rate had caused: the pace known to be too fast.
    cut_from: f64,
    last_cut: Option<Instant>,
    /// When a probe last found the rate to blame: near that rate, cuts need no probe.
    confirmed: Option<Instant>,
    epoch: Epoch,
    probe: Option<Probe>,
    /// Running share of throttled outcomes.
    throttle_share: f64,
    /// Throttle share the service causes whatever the rate (0 until seen).
    background: f64,
    cuts: u64,
    restores: u64,
}

/// How a paced call ended, as the pacer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Answered,
    Throttled,
    /// Failed otherwise (5xx, timeout, refused): neither throttled nor a reason to speed up.
    Failed,
}

/// A booked call: which regime of the pacer it was booked in.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    epoch: u64,
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
                confirmed: None,
                epoch: Epoch::new(0, now),
                probe: None,
                throttle_share: 0.0,
                background: 0.0,
                cuts: 0,
                restores: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PacerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When a call of `tokens` tokens may start; books that slot.
    fn book(&self, tokens: u64, now: Instant) -> (Instant, Ticket) {
        let mut s = self.lock();
        let request_slot = s.next_request.max(now);
        s.next_request =
            request_slot + Duration::from_secs_f64(1.0 / (self.requests_per_s * s.factor));
        let token_slot = s.next_tokens.max(now);
        s.next_tokens =
            token_slot + Duration::from_secs_f64(tokens as f64 / (self.tokens_per_s * s.factor));
        s.epoch.booked += 1;
        (request_slot.max(token_slot), Ticket { epoch: s.epoch.id })
    }

    /// Waits for the next slot for a call of about `tokens` tokens.
    pub async fn acquire(&self, tokens: u64) -> Ticket {
        let (at, ticket) = self.book(tokens, Instant::now());
        tokio::time::sleep_until(at.into()).await;
        ticket
    }

    /// Starts a new regime at `factor`. Slots already booked stay: after a cut the new pace
    /// starts once they are used (so the calls judged after the cut are not mixed with a burst
    /// at the old pace); after a restore nothing waits for the old, slower bookings.
    fn switch(s: &mut PacerState, factor: f64, now: Instant) {
        if factor > s.factor {
            s.next_request = s.next_request.min(now);
            s.next_tokens = s.next_tokens.min(now);
        }
        s.factor = factor;
        s.epoch = Epoch::new(s.epoch.id + 1, s.next_request.max(now));
    }

    /// Books the outcome of a call booked with `ticket`.
    pub fn settle(&self, ticket: Ticket, outcome: Outcome) {
        self.settle_at(ticket, outcome, Instant::now());
    }

    fn settle_at(&self, ticket: Ticket, outcome: Outcome, now: Instant) {
        let throttled = outcome == Outcome::Throttled;
        let mut s = self.lock();
        let x = if throttled { 1.0 } else { 0.0 };
        s.throttle_share += EWMA * (x - s.throttle_share);
        // The background level follows the throttle share down as the service's throttling
        // fades (a probe that finds it again sets it back up).
        s.background = s.background.min(s.throttle_share + MARGIN / 2.0);
        let current = ticket.epoch == s.epoch.id;
        if current {
            s.epoch.calls += 1;
            s.epoch.throttled += u64::from(throttled);
        }
        let min_factor = (MIN_RATE / self.requests_per_s).min(1.0);
        if let Some(probe) = s.probe {
            if !current
                || s.epoch.calls < PROBE_CALLS
                || now.duration_since(s.epoch.started) < PROBE_TIME
            {
                return;
            }
            let passed = s.epoch.passed();
            s.probe = None;
            tracing::debug!(
                passed_before = probe.passed_before,
                passed_after = passed,
                calls = s.epoch.calls,
                factor = s.factor,
                from = probe.from,
                "pacer: judging a cut"
            );
            // Helped: more got through (x1.4), or the throttle share at least halved (near the
            // limit, where the share that got through cannot rise by much).
            let helped = passed >= HELPED * probe.passed_before
                || (1.0 - passed) <= (1.0 - probe.passed_before) / 2.0;
            if helped || probe.from <= min_factor {
                // The rate caused it: the cut stays.
                s.cut_from = probe.from;
                s.confirmed = Some(now);
            } else if passed < probe.passed_before / HELPED {
                // Worse at the lower rate: something else changed meanwhile (a quota's burst
                // allowance ran out). Nothing learnt; the cut stays, as the careful choice.
                s.cut_from = probe.from;
            } else {
                // The service's throttling: back to the pace before, and that share is the
                // background from now on.
                s.background = s.background.max(1.0 - passed);
                s.confirmed = None;
                s.restores += 1;
                Self::switch(&mut s, probe.from, now);
            }
            return;
        }
        if throttled {
            let young = s.epoch.calls < PROBE_CALLS / 2
                || now.duration_since(s.epoch.started) < PROBE_TIME / 2;
            if !current
                || young
                || s.throttle_share <= s.background + MARGIN
                || s.last_cut
                    .is_some_and(|t| now.duration_since(t) < Duration::from_millis(500))
            {
                return;
            }
            // Halve what is achieved, not just what is allowed (concurrency may bind first).
            let elapsed = now.duration_since(s.epoch.started).as_secs_f64();
            let achieved = if elapsed >= 0.5 && s.epoch.booked > 0 {
                (s.epoch.booked as f64 / elapsed / self.requests_per_s).min(s.factor)
            } else {
                s.factor
            };
            // Near a limit a recent probe found the rate to blame for: an ordinary cut (halve,
            // climb back fast to just under it), as long as that finding is fresh.
            let known = s.confirmed.is_some_and(|t| now.duration_since(t) < RECHECK)
                && s.factor >= 0.7 * s.cut_from;
            if known {
                s.cut_from = s.factor;
                s.last_cut = Some(now);
                s.cuts += 1;
                let factor = (achieved / 2.0).max(min_factor);
                Self::switch(&mut s, factor, now);
                return;
            }
            let passed_before = s.epoch.passed();
            let probe = Probe {
                from: s.factor,
                passed_before,
            };
            s.probe = Some(probe);
            s.last_cut = Some(now);
            s.cuts += 1;
            let factor = (achieved / 2.0).max(min_factor);
            tracing::debug!(
                achieved_per_s = achieved * self.requests_per_s,
                throttle_share = s.throttle_share,
                background = s.background,
                passed_before,
                to_per_s = factor * self.requests_per_s,
                "pacer: cut"
            );
            Self::switch(&mut s, factor, now);
        } else if outcome == Outcome::Answered {
            let step = if s.factor < 0.9 * s.cut_from {
                FAST_RECOVERY
            } else {
                SLOW_RECOVERY
            };
            s.factor = (s.factor + step / self.requests_per_s).min(1.0);
        }
    }

    /// The share of the configured rate in force now.
    pub fn factor(&self) -> f64 {
        self.lock().factor
    }

    /// Rate cuts made, and cuts taken back as the service's throttling.
    pub fn adjustments(&self) -> (u64, u64) {
        let s = self.lock();
        (s.cuts, s.restores)
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
    pub cache_read_tokens: AtomicU64,
    pub cache_write_tokens: AtomicU64,
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
    /// Once requested, no new call is made.
    pub shutdown: crate::shutdown::Shutdown,
}

impl Engine {
    pub fn new(judge: Judge, rubric: Rubric, settings: JudgeSettings) -> Engine {
        Engine {
            pacer: Pacer::new(settings.requests_per_minute, settings.tokens_per_minute),
            judge,
            rubric,
            settings,
            stats: CallStats::default(),
            shutdown: crate::shutdown::Shutdown::new(),
        }
    }

    /// The same engine, stopping its calls when `shutdown` is requested.
    pub fn with_shutdown(mut self, shutdown: crate::shutdown::Shutdown) -> Engine {
        self.shutdown = shutdown;
        self
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

/// Throttled attempts one call makes before it gives up: throttling alone does not end a
/// judgment as an error (at a 30% throttle share, 30 in a row has odds of 2e-16).
pub const MAX_THROTTLED_ATTEMPTS: u32 = 30;

/// One logical call: paced, timed out, retried. On success also the latency of the attempt
/// that answered. `judge.max-attempts` bounds the attempts that failed for other reasons
/// (5xx, timeouts, connection errors); throttled ones have their own bound,
/// [`MAX_THROTTLED_ATTEMPTS`].
pub async fn call_with_retries(
    engine: &Engine,
    user_text: &str,
    estimated_tokens: u64,
) -> Result<(Reply, Duration), (String, CallError)> {
    let max_failures = engine.settings.max_attempts;
    let (mut failures, mut throttles) = (0u32, 0u32);
    loop {
        let ticket = engine.pacer.acquire(estimated_tokens).await;
        if engine.shutdown.is_requested() {
            engine.pacer.settle(ticket, Outcome::Failed);
            return Err(("not judged: stopping".into(), CallError::Interrupted));
        }
        CallStats::add(&engine.stats.calls, 1);
        if failures + throttles > 0 {
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
        let e = match outcome {
            Ok(reply) => {
                engine.pacer.settle(ticket, Outcome::Answered);
                CallStats::add(&engine.stats.input_tokens, reply.input_tokens);
                CallStats::add(&engine.stats.output_tokens, reply.output_tokens);
                CallStats::add(&engine.stats.cache_read_tokens, reply.cache_read_tokens);
                CallStats::add(&engine.stats.cache_write_tokens, reply.cache_write_tokens);
                return Ok((reply, started.elapsed()));
            }
            Err(e) => e,
        };
        match &e {
            CallError::Throttled(_) => {
                CallStats::add(&engine.stats.throttled, 1);
                engine.pacer.settle(ticket, Outcome::Throttled);
                throttles += 1;
            }
            other => {
                engine.pacer.settle(ticket, Outcome::Failed);
                match other {
                    CallError::Timeout(_) => CallStats::add(&engine.stats.timeouts, 1),
                    CallError::Server(_) => CallStats::add(&engine.stats.server_errors, 1),
                    _ => {}
                }
                if !e.is_retryable() {
                    return Err((format!("judge call {e}"), e));
                }
                failures += 1;
            }
        }
        if failures >= max_failures || throttles >= MAX_THROTTLED_ATTEMPTS {
            let attempts = failures + throttles;
            let throttled = if throttles > 0 {
                format!(", {throttles} throttled")
            } else {
                String::new()
            };
            return Err((
                format!("judge call {e} (gave up after {attempts} attempts{throttled})"),
                e,
            ));
        }
        // Throttling does not get more likely to pass the longer one waits (the pacer takes care
        // of the rate): its back-off stops growing at 4x the first, so an unlucky judgment
        // throttled many times in a row does not hold the end of a run for seconds.
        let attempt = failures.max(throttles.min(3));
        tokio::time::sleep(engine.backoff(attempt)).await;
    }
}

/// A judged pair, or why it could not be judged.
#[derive(Debug, Clone)]
pub struct PairOutcome {
    pub result: Result<Vec<Judgment>, String>,
    /// Input tokens besides those read from or written to the prompt cache.
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    /// Latency of the call(s) that answered, in milliseconds.
    pub latency_ms: f64,
    /// Why the call failed, when it did (not when the answer did not validate).
    pub call_error: Option<CallError>,
}

impl PairOutcome {
    /// What the call(s) cost at `prices`, prompt-cache tokens at their own prices.
    pub fn cost(&self, prices: &crate::config::Prices) -> f64 {
        prices.cost_cached(
            self.input_tokens,
            self.output_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
        )
    }

    /// A judgment abandoned because the process is stopping.
    pub fn interrupted() -> PairOutcome {
        PairOutcome {
            result: Err("not judged: stopping".into()),
            input_tokens: 0,
            output_tokens: 0,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            latency_ms: 0.0,
            call_error: Some(CallError::Interrupted),
        }
    }
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
        cache_read_tokens: 0,
        cache_write_tokens: 0,
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
        outcome.cache_read_tokens += reply.cache_read_tokens;
        outcome.cache_write_tokens += reply.cache_write_tokens;
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
    fn pacer_spaces_calls_by_requests_and_tokens() {
        let pacer = Pacer::new(600.0, 1e12); // 10/s
        let now = Instant::now();
        let slots: Vec<Duration> = (0..3).map(|_| pacer.book(1, now).0 - now).collect();
        assert_eq!(slots[0], Duration::ZERO);
        assert!((slots[1].as_secs_f64() - 0.1).abs() < 1e-6, "{slots:?}");
        assert!((slots[2].as_secs_f64() - 0.2).abs() < 1e-6, "{slots:?}");
        // Tokens pace too: 100 tokens/s, a 50-token call takes half a second of budget.
        let pacer = Pacer::new(1e9, 6000.0);
        let now = Instant::now();
        pacer.book(50, now);
        assert!(((pacer.book(50, now).0 - now).as_secs_f64() - 0.5).abs() < 1e-6);
    }

    /// Drives `pacer` for `calls` calls in virtual time, each answered at once; `throttle`
    /// decides from the call's time (seconds) and a uniform draw. Returns (seconds elapsed,
    /// calls that got through).
    fn simulate(
        pacer: &Pacer,
        calls: usize,
        mut throttle: impl FnMut(f64, f64) -> bool,
    ) -> (f64, usize) {
        let start = Instant::now();
        let mut now = start;
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut passed = 0;
        for _ in 0..calls {
            let (at, ticket) = pacer.book(1, now);
            now = at.max(now);
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let draw = (rng >> 11) as f64 / (1u64 << 53) as f64;
            let throttled = throttle(now.duration_since(start).as_secs_f64(), draw);
            let outcome = if throttled {
                Outcome::Throttled
            } else {
                passed += 1;
                Outcome::Answered
            };
            pacer.settle_at(ticket, outcome, now);
        }
        (now.duration_since(start).as_secs_f64(), passed)
    }

    #[test]
    fn the_services_own_throttling_does_not_slow_the_pacer_down() {
        // 30% of calls throttled at random, whatever the rate: the pace holds.
        let pacer = Pacer::new(6000.0, 1e12); // 100/s
        let (seconds, passed) = simulate(&pacer, 5000, |_, draw| draw < 0.3);
        let goodput = passed as f64 / seconds;
        assert!(
            goodput >= 0.9 * 70.0,
            "{goodput:.1}/s of an ideal 70/s; factor {:.2}, adjustments {:?}",
            pacer.factor(),
            pacer.adjustments()
        );
        let (cuts, restores) = pacer.adjustments();
        assert!(
            restores >= 1 && cuts - restores <= 1,
            "{cuts} cuts, {restores} restores"
        );
    }

    #[test]
    fn throttling_caused_by_the_rate_brings_the_pace_down_to_the_quota() {
        // The service admits 10 calls/s (a second of burst); the pacer is allowed 100/s.
        let quota = || {
            let mut admitted_until = 0.0f64;
            move |t: f64| {
                if t >= admitted_until {
                    admitted_until = admitted_until.max(t - 1.0) + 0.1;
                    false
                } else {
                    true
                }
            }
        };
        let pacer = Pacer::new(6000.0, 1e12);
        let mut throttled = quota();
        let (seconds, passed) = simulate(&pacer, 6000, |t, _| throttled(t));
        let goodput = passed as f64 / seconds;
        assert!(goodput >= 9.0, "{goodput:.2}/s of 10/s");
        let calls_per_s = 6000.0 / seconds;
        assert!(
            calls_per_s < 20.0,
            "{calls_per_s:.1} calls/s: the pace came down"
        );
        // Then the same service adds 30% throttling for capacity: still near the quota.
        let pacer = Pacer::new(6000.0, 1e12);
        let mut throttled = quota();
        let (seconds, passed) = simulate(&pacer, 6000, |t, draw| draw < 0.3 || throttled(t));
        let goodput = passed as f64 / seconds;
        assert!(goodput >= 0.7 * 9.0, "{goodput:.2}/s");
    }

    #[test]
    fn the_breaker_trips_on_fatal_failures_in_a_row_only() {
        let failed = |e: CallError| PairOutcome {
            result: Err(e.to_string()),
            input_tokens: 0,
            output_tokens: 0,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            latency_ms: 0.0,
            call_error: Some(e),
        };
        let ok = PairOutcome {
            result: Ok(Vec::new()),
            input_tokens: 0,
            output_tokens: 0,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
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
