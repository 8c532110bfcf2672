//! The executor: a dependency queue over a plan's DAG, run on a rayon pool.
//!
//! Modelled on cargo's job queue. Every selected task waits for the selected tasks it needs;
//! a task whose needs are all done is *ready*. Ready tasks are started in order of their
//! priority, the length of the longest path from them to the end of the graph, so the
//! critical path starts first. A task the cache can answer (`probe`) is resolved inline on the
//! coordinating thread, without a worker; the others run on a pool of `jobs` workers
//! (`rayon::ThreadPool::in_place_scope`, so the coordinator is not one of them). Workers send
//! their results over a channel to the coordinator, which alone updates the queue and emits
//! events, so progress is reported from one place.
//!
//! When the process is being stopped ([`crate::scratch::stopping`]), no new task starts.
//! On a failure, without `keep_going` no new task starts and the tasks in flight finish;
//! with it, every task downstream of the failure is skipped and everything else still runs.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::RwLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};

/// How to run.
#[derive(Debug, Clone, Copy)]
pub struct ExecOptions {
    /// Workers: at most this many tasks run at once.
    pub jobs: usize,
    /// Whether to go on with independent tasks after a failure.
    pub keep_going: bool,
}

/// What happened to a task, in the order the coordinator saw it.
#[derive(Debug)]
pub enum ExecEvent<'a, E> {
    /// The cache answered.
    Cached(NodeIndex),
    /// A worker started it.
    Started(NodeIndex),
    /// It finished.
    Finished(NodeIndex, Duration),
    /// It failed.
    Failed(NodeIndex, &'a E),
    /// It did not run: a task it needs failed (or the run stopped).
    Skipped(NodeIndex),
}

/// The results of finished tasks, readable while others run.
pub struct Done<T> {
    results: RwLock<HashMap<NodeIndex, T>>,
}

impl<T> From<HashMap<NodeIndex, T>> for Done<T> {
    fn from(results: HashMap<NodeIndex, T>) -> Self {
        Self {
            results: RwLock::new(results),
        }
    }
}

impl<T: Clone> Done<T> {
    /// The result of `node`, if it finished.
    pub fn get(&self, node: NodeIndex) -> Option<T> {
        self.results.read().ok()?.get(&node).cloned()
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct ExecOutcome<T, E> {
    /// Every finished task's result (cached or run).
    pub results: HashMap<NodeIndex, T>,
    /// The failures, in the order they happened.
    pub failures: Vec<(NodeIndex, E)>,
    /// Tasks that did not run.
    pub skipped: Vec<NodeIndex>,
}

/// Answers a task from the cache, inline on the coordinating thread.
pub type ProbeFn<'a, T> = dyn Fn(NodeIndex, &Done<T>) -> Option<T> + Sync + 'a;
/// Runs a task on a worker.
pub type RunFn<'a, T, E> = dyn Fn(NodeIndex, &Done<T>) -> Result<T, E> + Sync + 'a;

/// Runs `nodes` of `graph` (edges point from a task to the tasks that need it). `probe`
/// answers a task from the cache, inline; `run` runs it on a worker, with the results of
/// the tasks before it readable through [`Done`].
pub fn run_graph<N, T, E>(
    graph: &DiGraph<N, ()>,
    nodes: &[NodeIndex],
    options: ExecOptions,
    probe: &ProbeFn<'_, T>,
    run: &RunFn<'_, T, E>,
    on_event: &mut dyn FnMut(ExecEvent<'_, E>),
) -> ExecOutcome<T, E>
where
    T: Clone + Send + Sync,
    E: Send,
{
    let mut queue: Queue<'_, N, E> = Queue::new(graph, nodes, options);
    let done = Done {
        results: RwLock::new(HashMap::new()),
    };
    let jobs = options.jobs.max(1);
    let (tx, rx) = mpsc::channel::<Message<T, E>>();
    let work = |node: NodeIndex, tx: mpsc::Sender<Message<T, E>>, done: &Done<T>| {
        let start = Instant::now();
        let result = run(node, done);
        let _ = tx.send((node, result, start.elapsed()));
    };
    if let Ok(pool) = rayon::ThreadPoolBuilder::new().num_threads(jobs).build() {
        pool.in_place_scope(|scope| {
            let done = &done;
            let mut spawn = |node: NodeIndex| {
                let tx = tx.clone();
                scope.spawn(move |_| work(node, tx, done));
            };
            drive(&mut queue, done, jobs, probe, on_event, &rx, &mut spawn);
        });
    } else {
        // No pool (threads could not be made): each task runs on this thread.
        let mut spawn = |node: NodeIndex| work(node, tx.clone(), &done);
        drive(&mut queue, &done, 1, probe, on_event, &rx, &mut spawn);
    }
    let results = done.results.into_inner().unwrap_or_default();
    queue.into_outcome(nodes, results, on_event)
}

type Message<T, E> = (NodeIndex, Result<T, E>, Duration);

/// Starts ready tasks (answering cached ones inline) until `jobs` run, then waits for one to
/// finish; until nothing runs and nothing more can start.
fn drive<N, T: Clone, E>(
    queue: &mut Queue<'_, N, E>,
    done: &Done<T>,
    jobs: usize,
    probe: &ProbeFn<'_, T>,
    on_event: &mut dyn FnMut(ExecEvent<'_, E>),
    rx: &mpsc::Receiver<Message<T, E>>,
    spawn: &mut dyn FnMut(NodeIndex),
) {
    let mut running = 0usize;
    loop {
        // A process being stopped by a signal starts nothing more (see `crate::scratch`).
        while !queue.stopping && !crate::scratch::stopping() && running < jobs {
            let Some(node) = queue.pop_ready() else { break };
            if let Some(value) = probe(node, done) {
                on_event(ExecEvent::Cached(node));
                queue.succeeded(node, value, done);
                continue;
            }
            on_event(ExecEvent::Started(node));
            spawn(node);
            running += 1;
        }
        if running == 0 {
            break;
        }
        let Ok((node, result, took)) = rx.recv() else {
            break;
        };
        running -= 1;
        match result {
            Ok(value) => {
                on_event(ExecEvent::Finished(node, took));
                queue.succeeded(node, value, done);
            }
            Err(error) => {
                on_event(ExecEvent::Failed(node, &error));
                for skipped in queue.failed(node) {
                    on_event(ExecEvent::Skipped(skipped));
                }
                queue.failures.push((node, error));
            }
        }
    }
}

/// The dependency queue's state, owned by the coordinating thread.
struct Queue<'g, N, E> {
    graph: &'g DiGraph<N, ()>,
    selected: HashSet<NodeIndex>,
    priority: HashMap<NodeIndex, usize>,
    waiting: HashMap<NodeIndex, usize>,
    ready: BinaryHeap<(usize, Reverse<usize>)>,
    failures: Vec<(NodeIndex, E)>,
    skipped: HashSet<NodeIndex>,
    stopping: bool,
    keep_going: bool,
}

impl<'g, N, E> Queue<'g, N, E> {
    fn new(graph: &'g DiGraph<N, ()>, nodes: &[NodeIndex], options: ExecOptions) -> Self {
        let selected: HashSet<NodeIndex> = nodes.iter().copied().collect();
        let priority = priorities(graph, nodes, &selected);
        let waiting: HashMap<NodeIndex, usize> = nodes
            .iter()
            .map(|n| {
                (
                    *n,
                    graph
                        .neighbors_directed(*n, Direction::Incoming)
                        .filter(|m| selected.contains(m))
                        .count(),
                )
            })
            .collect();
        let ready = nodes
            .iter()
            .filter(|n| waiting[n] == 0)
            .map(|n| (priority[n], Reverse(n.index())))
            .collect();
        Self {
            graph,
            selected,
            priority,
            waiting,
            ready,
            failures: Vec::new(),
            skipped: HashSet::new(),
            stopping: false,
            keep_going: options.keep_going,
        }
    }

    fn dependents(&self, node: NodeIndex) -> Vec<NodeIndex> {
        self.graph
            .neighbors_directed(node, Direction::Outgoing)
            .filter(|m| self.selected.contains(m))
            .collect()
    }

    fn pop_ready(&mut self) -> Option<NodeIndex> {
        self.ready
            .pop()
            .map(|(_, Reverse(index))| NodeIndex::new(index))
    }

    fn succeeded<T>(&mut self, node: NodeIndex, value: T, done: &Done<T>) {
        if let Ok(mut results) = done.results.write() {
            results.insert(node, value);
        }
        for next in self.dependents(node) {
            if let Some(count) = self.waiting.get_mut(&next) {
                *count -= 1;
                if *count == 0 && !self.skipped.contains(&next) {
                    self.ready
                        .push((self.priority[&next], Reverse(next.index())));
                }
            }
        }
    }

    /// Records a failure; returns the tasks skipped because of it (with `keep_going`).
    fn failed(&mut self, node: NodeIndex) -> Vec<NodeIndex> {
        if !self.keep_going {
            self.stopping = true;
            return Vec::new();
        }
        let mut newly = Vec::new();
        let mut stack = self.dependents(node);
        while let Some(next) = stack.pop() {
            if self.skipped.insert(next) {
                newly.push(next);
                stack.extend(self.dependents(next));
            }
        }
        newly
    }

    fn into_outcome<T>(
        mut self,
        nodes: &[NodeIndex],
        results: HashMap<NodeIndex, T>,
        on_event: &mut dyn FnMut(ExecEvent<'_, E>),
    ) -> ExecOutcome<T, E> {
        let failures = std::mem::take(&mut self.failures);
        let ended: HashSet<NodeIndex> = results
            .keys()
            .copied()
            .chain(failures.iter().map(|(n, _)| *n))
            .collect();
        for node in nodes {
            if !ended.contains(node) && self.skipped.insert(*node) {
                on_event(ExecEvent::Skipped(*node));
            }
        }
        let mut skipped: Vec<NodeIndex> = self.skipped.into_iter().collect();
        skipped.sort();
        ExecOutcome {
            results,
            failures,
            skipped,
        }
    }
}

/// Each node's priority: the number of nodes on the longest path from it to a node nothing
/// selected needs.
fn priorities<N>(
    graph: &DiGraph<N, ()>,
    nodes: &[NodeIndex],
    selected: &HashSet<NodeIndex>,
) -> HashMap<NodeIndex, usize> {
    let order = petgraph::algo::toposort(graph, None).unwrap_or_default();
    let mut priority: HashMap<NodeIndex, usize> = HashMap::new();
    for node in order.iter().rev().filter(|n| selected.contains(n)) {
        let longest = graph
            .neighbors_directed(*node, Direction::Outgoing)
            .filter_map(|m| priority.get(&m))
            .max()
            .copied()
            .unwrap_or(0);
        priority.insert(*node, longest + 1);
    }
    for node in nodes {
        priority.entry(*node).or_insert(1);
    }
    priority
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// a → b → d, a → c → d, e (independent).
    #[allow(clippy::many_single_char_names)]
    fn diamond() -> (DiGraph<&'static str, ()>, Vec<NodeIndex>) {
        let mut g = DiGraph::new();
        let [a, b, c, d, e] = ["a", "b", "c", "d", "e"].map(|n| g.add_node(n));
        for (x, y) in [(a, b), (a, c), (b, d), (c, d)] {
            g.add_edge(x, y, ());
        }
        (g, vec![a, b, c, d, e])
    }

    fn names(g: &DiGraph<&'static str, ()>, nodes: &[NodeIndex]) -> Vec<&'static str> {
        let mut out: Vec<&str> = nodes.iter().map(|n| g[*n]).collect();
        out.sort_unstable();
        out
    }

    #[test]
    fn runs_every_task_after_its_needs_and_passes_results() {
        let (g, nodes) = diamond();
        let order = Mutex::new(Vec::new());
        let run = |n: NodeIndex, done: &Done<String>| -> Result<String, String> {
            order.lock().unwrap().push(g[n]);
            let before: Vec<String> = g
                .neighbors_directed(n, Direction::Incoming)
                .map(|m| done.get(m).unwrap())
                .collect();
            Ok(format!("{}({})", g[n], before.join(",")))
        };
        let out = run_graph(
            &g,
            &nodes,
            ExecOptions {
                jobs: 2,
                keep_going: false,
            },
            &|_, _| None,
            &run,
            &mut |_| {},
        );
        assert!(out.failures.is_empty() && out.skipped.is_empty());
        let d = out.results[&nodes[3]].clone();
        assert!(d == "d(b(a()),c(a()))" || d == "d(c(a()),b(a()))", "{d}");
        let order = order.into_inner().unwrap();
        let pos = |x: &str| order.iter().position(|y| *y == x).unwrap();
        assert!(
            pos("a") < pos("b")
                && pos("a") < pos("c")
                && pos("b") < pos("d")
                && pos("c") < pos("d")
        );
    }

    #[test]
    fn cached_tasks_never_reach_a_worker() {
        let (g, nodes) = diamond();
        let ran = AtomicUsize::new(0);
        let probe = |n: NodeIndex, _: &Done<u32>| (g[n] == "a" || g[n] == "b").then_some(0);
        let run = |_: NodeIndex, _: &Done<u32>| -> Result<u32, ()> {
            ran.fetch_add(1, Ordering::SeqCst);
            Ok(1)
        };
        let mut cached = Vec::new();
        let out = run_graph(
            &g,
            &nodes,
            ExecOptions {
                jobs: 2,
                keep_going: false,
            },
            &probe,
            &run,
            &mut |e| {
                if let ExecEvent::Cached(n) = e {
                    cached.push(n);
                }
            },
        );
        assert_eq!(ran.load(Ordering::SeqCst), 3);
        assert_eq!(names(&g, &cached), ["a", "b"]);
        assert_eq!(out.results.len(), 5);
    }

    #[test]
    fn keep_going_skips_only_what_is_downstream_of_a_failure() {
        let (g, nodes) = diamond();
        let run = |n: NodeIndex, _: &Done<()>| if g[n] == "b" { Err("boom") } else { Ok(()) };
        let out = run_graph(
            &g,
            &nodes,
            ExecOptions {
                jobs: 1,
                keep_going: true,
            },
            &|_, _| None,
            &run,
            &mut |_| {},
        );
        assert_eq!(out.failures.len(), 1);
        assert_eq!(g[out.failures[0].0], "b");
        assert_eq!(names(&g, &out.skipped), ["d"]);
        let finished: Vec<NodeIndex> = out.results.keys().copied().collect();
        assert_eq!(names(&g, &finished), ["a", "c", "e"]);
    }

    #[test]
    fn without_keep_going_no_new_task_starts_after_a_failure() {
        let (g, nodes) = diamond();
        // With one worker, `a` (priority 3) runs first and fails: nothing else may start.
        let run = |n: NodeIndex, _: &Done<()>| if g[n] == "a" { Err("boom") } else { Ok(()) };
        let out = run_graph(
            &g,
            &nodes,
            ExecOptions {
                jobs: 1,
                keep_going: false,
            },
            &|_, _| None,
            &run,
            &mut |_| {},
        );
        assert!(out.results.is_empty());
        assert_eq!(names(&g, &out.skipped), ["b", "c", "d", "e"]);
    }

    #[test]
    fn the_longest_path_starts_first_and_jobs_bound_concurrency() {
        let (g, nodes) = diamond();
        let started = Mutex::new(Vec::new());
        let (live, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let run = |n: NodeIndex, _: &Done<()>| -> Result<(), ()> {
            started.lock().unwrap().push(g[n]);
            let now = live.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            live.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        };
        run_graph(
            &g,
            &nodes,
            ExecOptions {
                jobs: 2,
                keep_going: false,
            },
            &|_, _| None,
            &run,
            &mut |_| {},
        );
        assert_eq!(started.lock().unwrap()[0], "a", "a heads the longest path");
        assert!(peak.load(Ordering::SeqCst) <= 2);
    }
}
