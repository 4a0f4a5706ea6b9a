# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The questions an analyst asks first, on an evalwatch warehouse
#
# Opens as a notebook in Jupyter and VS Code (jupytext's percent format) and runs as a script:
#
#     pip install polars duckdb matplotlib
#     python examples/analyst.py                        # reads ./warehouse, writes ./analyst-out/
#     EVALWATCH_WAREHOUSE=/path/to/warehouse EVALWATCH_ANALYST_OUT=/tmp/out python examples/analyst.py
#
# Every table is Hive-partitioned Parquet (`model=` and `date=` come from the folder names), so
# polars and DuckDB read the warehouse as it is; nothing here needs evalwatch itself. A
# warehouse on S3 works the same with `s3://bucket/prefix` and credentials in the environment.

# %%
import json
import os
from pathlib import Path

import duckdb
import matplotlib

matplotlib.use("Agg")  # PNG files, no display needed
import matplotlib.pyplot as plt
import polars as pl

WAREHOUSE = os.environ.get("EVALWATCH_WAREHOUSE", "warehouse").rstrip("/")
OUT = Path(os.environ.get("EVALWATCH_ANALYST_OUT", "analyst-out"))
OUT.mkdir(parents=True, exist_ok=True)
answers = {}


def table(name):
    """A table of the warehouse as a polars LazyFrame (None when the run did not write it)."""
    if not WAREHOUSE.startswith("s3://") and not any(Path(WAREHOUSE, name).rglob("*.parquet")):
        return None
    return pl.scan_parquet(f"{WAREHOUSE}/{name}/**/*.parquet", hive_partitioning=True)


def sql(query):
    """DuckDB over the warehouse (`{wh}` in the query is its path), as a polars DataFrame."""
    relation = duckdb.sql(query.format(wh=WAREHOUSE))
    return pl.DataFrame(relation.fetchall(), schema=relation.columns, orient="row")


# %% [markdown]
# ## 1. Which model-days alerted, and why
#
# `drift/` holds one row per model, day, metric and test; an alert is a (model, day, metric)
# with at least one test at `alert`. The tests that agreed, and whether the drop is `sustained`
# or `intermittent`, say why.

# %%
drift = table("drift")
if drift is None:
    raise SystemExit(f"{WAREHOUSE}/drift is empty: run `evalwatch run` (or `analyse`) first")
events = (
    drift.filter(pl.col("verdict").is_in(["alert", "warn"]))
    .group_by("model", "date", "metric", "verdict")
    .agg(
        pl.col("test").sort().str.join(", ").alias("tests"),
        pl.col("pattern").first(),
        pl.col("baseline_mean").first(),
        pl.col("current_mean").first(),
        pl.col("p_adjusted").min().alias("best_p"),
    )
    .sort("verdict", "model", "date", "metric")
    .collect()
)
alerts = events.filter(pl.col("verdict") == "alert")
print(f"{alerts.height} alerts and {events.height - alerts.height} warnings")
print(events.head(20))
answers["alerts"] = alerts.height
answers["warnings"] = events.height - alerts.height
judge, rubric = drift.select("judge", "rubric").first().collect().row(0)
answers["judge"] = judge

# %% [markdown]
# ## 2. The worst replies of a drifting day
#
# The day with the most alerts (or, with none, the model-day with the lowest composite in
# `aggregates/`), and its lowest-scoring replies: `scores/` (one row per capture and dimension,
# by this rubric and judge) joined to `captures/` with DuckDB.

# %%
aggregates = table("aggregates").filter(pl.col("window_days") == 1).collect()
if alerts.height:
    worst_day = alerts.group_by("model", "date").len().sort("len", descending=True).row(0)[:2]
else:
    worst_day = aggregates.sort("composite_mean").select("model", "date").row(0)
model, day = worst_day
worst = sql(
    f"""
    with s as (
        select request_id, avg(score) as mean_score,
               string_agg(dimension || ' ' || round(score, 2), ', ' order by dimension) as dimensions
        from read_parquet('{{wh}}/scores/**/*.parquet', hive_partitioning = true)
        where model = '{model}' and date = '{day}' and judge = '{judge}' and status = 'ok'
        group by request_id
    )
    select s.mean_score, s.dimensions, left(c.prompt, 160) as prompt, left(c.response, 240) as reply
    from s join read_parquet('{{wh}}/captures/**/*.parquet', hive_partitioning = true) c
      on c.request_id = s.request_id and c.model = '{model}' and c.date = '{day}'
    order by s.mean_score, s.request_id
    limit 5
    """
)
print(f"{model} on {day}: its five lowest-scoring replies")
for row in worst.iter_rows(named=True):
    print(f"- {row['mean_score']:.2f} ({row['dimensions']}): {row['reply']!r}")
answers["worst_day"] = {"model": model, "date": str(day), "replies": worst.height}

# %% [markdown]
# ## 3. Quality per dollar, by model
#
# `aggregates/` joins the judged quality with the endpoint's cost (telemetry): the composite
# mean per dollar of serving, and the trend of the composite per day.

# %%
by_model = (
    aggregates.group_by("model")
    .agg(
        pl.col("composite_mean").mean(),
        pl.col("quality_per_dollar").mean(),
        pl.col("cost_per_1k_requests").mean(),
        pl.col("requests").sum(),
    )
    .sort("model")
)
print(by_model)
answers["quality_per_dollar"] = {
    r["model"]: r["quality_per_dollar"] for r in by_model.iter_rows(named=True)
}

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
left.bar(by_model["model"], by_model["quality_per_dollar"].fill_null(0.0), color="#4c78a8")
left.set_title("composite quality per dollar")
left.set_ylabel("composite mean / (USD per 1,000 requests)")
for name, days in aggregates.sort("date").group_by("model", maintain_order=True):
    right.plot(days["date"], days["composite_mean"], marker="o", label=name[0])
for (model_name, date) in alerts.select("model", "date").unique().iter_rows():
    right.axvline(date, color="#e45756", alpha=0.3)
right.set_title(f"composite per day ({judge}); red: alert days")
right.legend()
fig.autofmt_xdate()
fig.tight_layout()
fig.savefig(OUT / "quality_per_dollar.png", dpi=100)
plt.close(fig)

# %% [markdown]
# ## 4. What users asked: topic shares
#
# With embeddings on, `topics/` holds per model, day and topic of the prompts its share, the
# baseline's share, its quality and its terms. The shares per day, per model:

# %%
topics = table("topics")
if topics is None:
    print("no topics/ table: the embed stage did not run (`[embed] enabled`, the model)")
    answers["topics"] = 0
else:
    daily = (
        topics.filter(pl.col("window_days") == 1)
        .with_columns(
            pl.col("top_terms").str.split(", ").list.head(3).list.join(" ").alias("label")
        )
        .collect()
    )
    answers["topics"] = daily.select("model", "topic").unique().height
    models = sorted(daily["model"].unique())
    fig, axes = plt.subplots(len(models), 1, figsize=(10, 3.2 * len(models)), squeeze=False)
    for ax, name in zip(axes[:, 0], models):
        wide = (
            daily.filter(pl.col("model") == name)
            .pivot(on="topic", index="date", values="share", aggregate_function="sum")
            .sort("date")
            .fill_null(0.0)
        )
        names = [c for c in wide.columns if c != "date"]
        ax.stackplot(wide["date"], *[wide[c] for c in names], labels=names)
        ax.set_title(f"{name}: share of prompts by topic")
        ax.set_ylim(0, 1)
        ax.legend(loc="upper left", fontsize=7, ncol=4)
    fig.tight_layout()
    fig.savefig(OUT / "topic_shares.png", dpi=100)
    plt.close(fig)
    last = daily.filter(pl.col("date") == daily["date"].max()).sort("model", "share", descending=[False, True])
    print(last.select("model", "topic", "share", "baseline_share", "composite_mean", "label"))

# %%
(OUT / "answers.json").write_text(json.dumps(answers, indent=2, default=str))
print(f"answers and plots in {OUT}/")
