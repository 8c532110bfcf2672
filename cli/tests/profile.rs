//! `strata build --profile FILE`: a Chrome trace-event file with every task once, inside the
//! build's span, on worker tracks that show tasks running side by side.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::collections::HashMap;

use common::*;
use serde_json::Value;

/// Builds the example monorepo copy with `--profile` and `--json`; returns (report, trace
/// events).
fn build(fx: &ExampleCopy, jobs: &str) -> (Value, Vec<Value>) {
    let trace = fx.path("trace.json");
    let out = strata(
        &fx.path("examples"),
        &[
            "build",
            "monorepo",
            "--jobs",
            jobs,
            "--cache-dir",
            fx.path("cache").to_str().unwrap(),
            "--profile",
            trace.to_str().unwrap(),
            "--json",
        ],
    );
    assert_exit(&out, 0);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let trace: Value = serde_json::from_slice(&std::fs::read(&trace).unwrap()).unwrap();
    (report, trace["traceEvents"].as_array().unwrap().clone())
}

fn of_cat<'a>(events: &'a [Value], cat: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["cat"] == cat).collect()
}

fn num(event: &Value, field: &str) -> u64 {
    event[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} of {event}"))
}

#[test]
fn every_task_is_one_span_inside_the_build_and_two_jobs_overlap() {
    let fx = ExampleCopy::new();
    let (report, events) = build(&fx, "2");
    for event in &events {
        assert!(
            event["name"].is_string() && event["ph"].is_string() && event["pid"].is_u64(),
            "not a trace event: {event}"
        );
    }
    let builds = of_cat(&events, "build");
    assert_eq!(builds.len(), 1, "one build span");
    let (start, end) = (
        num(builds[0], "ts"),
        num(builds[0], "ts") + num(builds[0], "dur"),
    );
    assert_eq!(of_cat(&events, "phase")[0]["name"], "detect");

    let spans = of_cat(&events, "task");
    let ran: Vec<&Value> = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "ran")
        .collect();
    assert_eq!(ran.len(), 44, "a cold build runs every task");
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for span in &spans {
        assert_eq!(span["ph"], "X");
        let key = (
            span["args"]["id"].as_str().unwrap().to_owned(),
            span["args"]["key"].as_str().unwrap().to_owned(),
        );
        *seen.entry(key).or_default() += 1;
        let (ts, dur) = (num(span, "ts"), num(span, "dur"));
        assert!(start <= ts && ts + dur <= end, "{span} is inside the build");
        assert_eq!(span["args"]["status"], "ran");
        assert!(span["args"]["reason"].is_string(), "{span}");
        let tid = num(span, "tid");
        assert!(
            (1..=2).contains(&tid),
            "two jobs, two worker tracks: {span}"
        );
    }
    for task in &ran {
        let key = (
            task["id"].as_str().unwrap().to_owned(),
            task["key"].as_str().unwrap().to_owned(),
        );
        assert_eq!(seen.get(&key), Some(&1), "{key:?} appears once");
    }
    assert_eq!(spans.len(), ran.len());

    // Spans on one track never overlap; on two tracks some do (two jobs ran at once).
    let interval = |s: &Value| (num(s, "ts"), num(s, "ts") + num(s, "dur"));
    let mut overlapping = 0;
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            let ((a0, a1), (b0, b1)) = (interval(a), interval(b));
            if a0 < b1 && b0 < a1 {
                assert_ne!(a["tid"], b["tid"], "{a} and {b} share a track");
                overlapping += 1;
            }
        }
    }
    assert!(overlapping > 0, "no two tasks ran at once with --jobs 2");
    let names: Vec<&str> = events
        .iter()
        .filter(|e| e["name"] == "thread_name")
        .map(|e| e["args"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["coordinator", "worker 1", "worker 2"]);
}

#[test]
fn cache_hits_are_instant_events_with_their_key() {
    let fx = ExampleCopy::new();
    build(&fx, "2");
    std::fs::remove_dir_all(fx.path("examples/monorepo/out")).unwrap();
    let (report, events) = build(&fx, "2");
    let cached: Vec<&Value> = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "cached")
        .collect();
    assert!(!cached.is_empty(), "{report:#}");
    let hits = of_cat(&events, "cache");
    assert_eq!(hits.len(), cached.len());
    for hit in &hits {
        assert_eq!(hit["ph"], "i");
        assert_eq!(hit["args"]["status"], "cached");
        assert!(
            cached.iter().any(|t| t["key"] == hit["args"]["key"]),
            "{hit}"
        );
    }
    // What ran without the output: each service's app and image tasks.
    assert_eq!(of_cat(&events, "task").len(), 20);
}
