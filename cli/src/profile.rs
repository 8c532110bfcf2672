//! `strata build --profile FILE`: the build as a Chrome trace-event JSON file, which Perfetto
//! (ui.perfetto.dev) and `chrome://tracing` open. Track 0 is the coordinator: the whole build,
//! detection and the cache hits (instant events: a hit does no work). Tracks 1..=jobs are the
//! worker slots: a task takes the lowest free slot when it starts and frees it when it ends,
//! so the tracks show exactly how many tasks ran at once and which waited. Each task span
//! carries its key, status and reason; they are joined in from the build's report when the
//! file is written, so the hot path only takes a lock and reads the clock.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;
use serde_json::{Value, json};
use strata_engine::execute::TaskReport;

/// A build's trace, recorded as it runs.
pub(crate) struct Profile {
    path: PathBuf,
    start: Instant,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The label of the task in each worker slot, `None` when free.
    slots: Vec<Option<String>>,
    /// Tasks running: label → (slot, start in µs).
    running: HashMap<String, (usize, u64)>,
    /// Finished spans: (label, slot, start µs, duration µs, outcome).
    spans: Vec<(String, usize, u64, u64, &'static str)>,
    /// Cache hits: (label, at µs).
    hits: Vec<(String, u64)>,
    /// Coordinator spans (name, start µs, duration µs).
    phases: Vec<(String, u64, u64)>,
}

/// One trace event, in the Trace Event Format's field names.
#[derive(Serialize)]
struct TraceEvent {
    name: String,
    cat: &'static str,
    ph: &'static str,
    ts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    dur: Option<u64>,
    pid: u32,
    tid: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    s: Option<&'static str>,
    #[serde(skip_serializing_if = "Value::is_null")]
    args: Value,
}

impl Profile {
    /// A profile written to `path` by [`Self::write`]; its clock starts now.
    pub(crate) fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            start: Instant::now(),
            state: Mutex::new(State::default()),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// A coordinator phase (detection) that began at `began` and ends now.
    pub(crate) fn phase(&self, name: &str, began: Instant) {
        let start = u64::try_from(began.duration_since(self.start).as_micros()).unwrap_or(0);
        let end = self.now();
        if let Ok(mut state) = self.state.lock() {
            state
                .phases
                .push((name.to_owned(), start, end.saturating_sub(start)));
        }
    }

    /// A task started: it takes the lowest free worker slot.
    pub(crate) fn started(&self, label: &str) {
        let at = self.now();
        if let Ok(mut state) = self.state.lock() {
            let slot = state
                .slots
                .iter()
                .position(Option::is_none)
                .unwrap_or_else(|| {
                    state.slots.push(None);
                    state.slots.len() - 1
                });
            state.slots[slot] = Some(label.to_owned());
            state.running.insert(label.to_owned(), (slot, at));
        }
    }

    /// A task ended (`ran` or `failed`), freeing its slot.
    pub(crate) fn ended(&self, label: &str, outcome: &'static str) {
        let at = self.now();
        if let Ok(mut state) = self.state.lock()
            && let Some((slot, start)) = state.running.remove(label)
        {
            state.slots[slot] = None;
            state.spans.push((
                label.to_owned(),
                slot,
                start,
                at.saturating_sub(start),
                outcome,
            ));
        }
    }

    /// A task answered from the cache.
    pub(crate) fn cached(&self, label: &str) {
        let at = self.now();
        if let Ok(mut state) = self.state.lock() {
            state.hits.push((label.to_owned(), at));
        }
    }

    /// Writes the trace: the build span, phases, task spans and hits, each task's key, status
    /// and reason from `tasks` (by label).
    pub(crate) fn write(&self, tasks: &[TaskReport]) -> std::io::Result<()> {
        let end = self.now();
        let state = self
            .state
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?;
        let by_label: HashMap<&str, &TaskReport> =
            tasks.iter().map(|t| (t.label.as_str(), t)).collect();
        let task_args = |label: &str, status: &str| match by_label.get(label) {
            Some(task) => json!({
                "id": task.id,
                "key": task.key,
                "status": status,
                "reason": task.reason,
                "services": task.services,
            }),
            None => json!({ "status": status }),
        };
        let event = |name: String, cat, ph, ts, dur, tid, args| TraceEvent {
            name,
            cat,
            ph,
            ts,
            dur,
            pid: 1,
            tid,
            s: (ph == "i").then_some("t"),
            args,
        };
        let mut events = vec![event(
            "process_name".into(),
            "__metadata",
            "M",
            0,
            None,
            0,
            json!({ "name": "strata build" }),
        )];
        let tracks = state.spans.iter().map(|s| s.1 + 1).max().unwrap_or(0);
        for tid in 0..=tracks {
            let name = if tid == 0 {
                "coordinator".to_owned()
            } else {
                format!("worker {tid}")
            };
            events.push(event(
                "thread_name".into(),
                "__metadata",
                "M",
                0,
                None,
                tid,
                json!({ "name": name }),
            ));
        }
        events.push(event(
            "build".into(),
            "build",
            "X",
            0,
            Some(end),
            0,
            Value::Null,
        ));
        for (name, start, dur) in &state.phases {
            events.push(event(
                name.clone(),
                "phase",
                "X",
                *start,
                Some(*dur),
                0,
                Value::Null,
            ));
        }
        for (label, slot, start, dur, outcome) in &state.spans {
            events.push(event(
                label.clone(),
                "task",
                "X",
                *start,
                Some(*dur),
                slot + 1,
                task_args(label, outcome),
            ));
        }
        for (label, at) in &state.hits {
            events.push(event(
                label.clone(),
                "cache",
                "i",
                *at,
                None,
                0,
                task_args(label, "cached"),
            ));
        }
        let trace = json!({ "traceEvents": events, "displayTimeUnit": "ms" });
        let mut file = std::fs::File::create(&self.path)?;
        serde_json::to_writer(&mut file, &trace)?;
        file.write_all(b"\n")
    }

    /// Where the trace goes.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}
