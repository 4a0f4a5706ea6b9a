//! Pairwise judging for `compare --pairwise`: for every matched prompt the judge sees both
//! replies twice, baseline first and candidate first, on the `pairwise` rubric (1: reply A
//! clearly better .. 3: equal .. 5: reply B clearly better). LLM judges go through the score
//! engine (pacing, retries with back-off, one repair) and a judge cache of their own in the
//! comparison's scratch warehouse; the offline scorer prefers by its own signals (no position
//! bias). [`super::figures::reconcile`] turns the two verdicts into the candidate's outcome.
//! A jury judges member by member (each under its own id and cache scope); the members' outcomes
//! are combined per item by the jury's aggregate ([`combine`]). `calibrate` judges people's
//! preferences through the same function.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::figures::{Outcome, Preference, reconcile};
use crate::aws::AwsClients;
use crate::config::JudgeSettings;
use crate::judge::{Judge, protocol};
use crate::rubric::Rubric;
use crate::score::cache::{self, CachedJudgment, Scope};
use crate::score::engine::{Engine, judge_text};
use crate::util::sha256_hex;
use crate::warehouse::Warehouse;

/// One prompt and its two replies.
pub struct Item {
    pub prompt: String,
    pub baseline: String,
    pub candidate: String,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PairwiseRun {
    /// Per item, in order.
    #[serde(skip)]
    pub outcomes: Vec<Outcome>,
    pub calls: u64,
    pub cached: u64,
    pub errors: u64,
    /// Judgments not made because the budget would have been exceeded.
    pub skipped_budget: u64,
    pub cost_usd: f64,
    pub first_error: Option<String>,
    /// A jury's members: id and outcomes per item, in order.
    #[serde(skip)]
    pub members: Vec<(String, Vec<Outcome>)>,
}

/// A finished judgment: item, order (0 baseline first, 1 candidate first), the level and what to
/// cache (or why it failed), its cost.
type Done = (usize, usize, Result<(u32, CachedJudgment), String>, f64);

/// A level of the rubric's first dimension as a preference: below the middle of its levels
/// prefers the first reply, above it the second.
fn preference(rubric: &Rubric, level: u32) -> Preference {
    let levels = rubric
        .dimensions
        .first()
        .map(|d| d.scale.levels())
        .unwrap_or_else(|| vec![1, 2, 3, 4, 5]);
    let (lo, hi) = (*levels.first().unwrap_or(&1), *levels.last().unwrap_or(&5));
    let mid = f64::from(lo + hi) / 2.0;
    match f64::from(level) {
        l if l < mid => Preference::First,
        l if l > mid => Preference::Second,
        _ => Preference::Tie,
    }
}

/// Judges every item in both orders; a jury member by member, its outcome per item the members'
/// combined by its aggregate.
pub async fn judge_both_orders(
    scratch: &Warehouse,
    rubric: &Rubric,
    settings: &JudgeSettings,
    aws: &AwsClients,
    items: &[Item],
    budget_usd: Option<f64>,
) -> Result<PairwiseRun, super::CompareError> {
    if settings.kind != crate::config::JudgeKind::Jury {
        return judge_one(scratch, rubric, settings, aws, items, budget_usd).await;
    }
    let members = settings.members().map_err(super::CompareError::Judge)?;
    let mut run = PairwiseRun::default();
    for member in &members {
        let left = budget_usd.map(|b| (b - run.cost_usd).max(0.0));
        let one = judge_one(scratch, rubric, member, aws, items, left).await?;
        run.calls += one.calls;
        run.cached += one.cached;
        run.errors += one.errors;
        run.skipped_budget += one.skipped_budget;
        run.cost_usd += one.cost_usd;
        if run.first_error.is_none() {
            run.first_error = one.first_error;
        }
        run.members
            .push((crate::judge::id_of(member), one.outcomes));
    }
    run.outcomes = (0..items.len())
        .map(|i| {
            let votes: Vec<Outcome> = run.members.iter().map(|(_, o)| o[i]).collect();
            combine(&votes, settings.jury_aggregate)
        })
        .collect();
    Ok(run)
}

/// A jury's outcome of one item from its members': each as a direction (a win +1, a loss -1, a
/// tie or an order-dependent verdict 0; a missing one left out), combined by the aggregate: the
/// sign of the mean, of the (lower) median, or the most common direction (no single most common
/// one: a tie). No member's verdict: missing.
pub fn combine(votes: &[Outcome], aggregate: crate::config::JuryAggregate) -> Outcome {
    use crate::config::JuryAggregate;
    let mut directions: Vec<i32> = votes
        .iter()
        .filter_map(|o| match o {
            Outcome::Win => Some(1),
            Outcome::Loss => Some(-1),
            Outcome::Tie | Outcome::Inconsistent => Some(0),
            Outcome::Missing => None,
        })
        .collect();
    if directions.is_empty() {
        return Outcome::Missing;
    }
    directions.sort_unstable();
    let direction = match aggregate {
        JuryAggregate::Mean => directions.iter().sum::<i32>().signum(),
        JuryAggregate::Median => directions[(directions.len() - 1) / 2],
        JuryAggregate::Majority => {
            let count = |d: i32| directions.iter().filter(|x| **x == d).count();
            let (win, loss, tie) = (count(1), count(-1), count(0));
            if win > loss && win > tie {
                1
            } else if loss > win && loss > tie {
                -1
            } else {
                0
            }
        }
    };
    match direction {
        1 => Outcome::Win,
        -1 => Outcome::Loss,
        _ => Outcome::Tie,
    }
}

/// Judges every item in both orders with one judge.
async fn judge_one(
    scratch: &Warehouse,
    rubric: &Rubric,
    settings: &JudgeSettings,
    aws: &AwsClients,
    items: &[Item],
    budget_usd: Option<f64>,
) -> Result<PairwiseRun, super::CompareError> {
    let judge = Judge::build(settings, rubric, aws)
        .await
        .map_err(super::CompareError::Judge)?;
    let mut run = PairwiseRun::default();
    if judge.is_offline() {
        for item in items {
            let level = |a: &str, b: &str| {
                judge
                    .offline_preference(&item.prompt, a, b)
                    .and_then(Result::ok)
                    .map(|(level, _)| preference(rubric, level))
            };
            run.outcomes.push(reconcile(
                level(&item.baseline, &item.candidate),
                level(&item.candidate, &item.baseline),
            ));
        }
        return Ok(run);
    }
    let scope = Scope {
        rubric_hash: rubric.hash(),
        judge: judge.id(),
        params_hash: judge.params_hash(),
    };
    let (cached, _) = cache::load(scratch, &scope).await?;
    let (sender, writer) = cache::spawn_writer(scratch.clone(), &scope);
    let engine = Arc::new(Engine::new(judge.clone(), rubric.clone(), settings.clone()));
    let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let prompting = judge.prompting().cloned();
    let mut levels: Vec<[Option<u32>; 2]> = vec![[None, None]; items.len()];
    let mut tasks: JoinSet<Done> = JoinSet::new();
    let mut reserved = 0.0;
    for (i, item) in items.iter().enumerate() {
        for (order, (first, second)) in [
            (&item.baseline, &item.candidate),
            (&item.candidate, &item.baseline),
        ]
        .into_iter()
        .enumerate()
        {
            let content =
                sha256_hex(format!("pairwise\0{}\0{first}\0{second}", item.prompt).as_bytes());
            let key = scope.key(&content);
            if let Some(hit) = cached.get(&key) {
                run.cached += 1;
                levels[i][order] = hit.levels.first().map(|(_, l)| *l);
                continue;
            }
            let user_estimate = protocol::pairwise_user_text(&item.prompt, first, second, None);
            let estimate = match (&settings.prices, &prompting) {
                (Some(prices), Some(p)) => prices.cost(
                    p.estimate_input_tokens(&user_estimate),
                    protocol::estimate_output_tokens(rubric),
                ),
                _ => 0.0,
            };
            if budget_usd.is_some_and(|b| reserved + estimate > b) {
                run.skipped_budget += 1;
                continue;
            }
            reserved += estimate;
            let (engine, permits) = (engine.clone(), permits.clone());
            let (prompt, first, second) = (item.prompt.clone(), first.clone(), second.clone());
            let prices = settings.prices;
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let outcome = judge_text(&engine, &|repair| {
                    protocol::pairwise_user_text(&prompt, &first, &second, repair)
                })
                .await;
                let cost = prices.map_or(0.0, |p| outcome.cost(&p));
                let result = match &outcome.result {
                    Ok(judgments) => match judgments.first() {
                        Some(first) => Ok((
                            first.level,
                            CachedJudgment::new(
                                key,
                                content,
                                judgments,
                                &outcome,
                                prices.map(|_| cost),
                            ),
                        )),
                        None => Err("no judgment".to_string()),
                    },
                    Err(e) => Err(e.clone()),
                };
                (i, order, result, cost)
            });
        }
    }
    while let Some(done) = tasks.join_next().await {
        let Ok((i, order, result, cost)) = done else {
            run.errors += 1;
            continue;
        };
        run.calls += 1;
        run.cost_usd += cost;
        match result {
            Ok((level, entry)) => {
                levels[i][order] = Some(level);
                let _ = sender.send(entry);
            }
            Err(e) => {
                run.errors += 1;
                run.first_error.get_or_insert(e);
            }
        }
    }
    drop(sender);
    let _ = writer.await;
    run.outcomes = levels
        .iter()
        .map(|[ab, ba]| {
            reconcile(
                ab.map(|l| preference(rubric, l)),
                ba.map(|l| preference(rubric, l)),
            )
        })
        .collect();
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::JuryAggregate;
    use Outcome::*;

    #[test]
    fn a_jury_combines_its_members_verdicts() {
        assert_eq!(combine(&[Win, Win, Loss], JuryAggregate::Majority), Win);
        assert_eq!(combine(&[Win, Loss, Tie], JuryAggregate::Majority), Tie);
        assert_eq!(
            combine(&[Win, Inconsistent, Inconsistent], JuryAggregate::Majority),
            Tie
        );
        assert_eq!(combine(&[Win, Loss, Loss], JuryAggregate::Mean), Loss);
        assert_eq!(combine(&[Win, Tie, Tie], JuryAggregate::Mean), Win);
        assert_eq!(combine(&[Win, Tie, Tie], JuryAggregate::Median), Tie);
        assert_eq!(combine(&[Win, Missing, Win], JuryAggregate::Median), Win);
        assert_eq!(
            combine(&[Missing, Missing], JuryAggregate::Majority),
            Missing
        );
    }
}
