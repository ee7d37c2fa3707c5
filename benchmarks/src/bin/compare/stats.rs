//! Interleaved rounds and the numbers reported from them.
//!
//! A comparison is a list of subjects; every round runs each subject once,
//! after one discarded warm-up pass, so all subjects see the same machine
//! load. The order is shuffled every round: on a virtual machine a
//! subject's wake-up latency depends on what ran just before it (a vCPU
//! that was busy a moment ago wakes in microseconds, an idle one in tens
//! of them), and a fixed order (A, B, C, A, B, C, …) gave every subject the
//! same predecessor in every round, which moved the Redis write-path ratios
//! by 2× (BENCHMARKS.md, session 20). A ratio is computed per round
//! (subject / baseline of that round) and reported as the median with the
//! min–max over the rounds.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// One measured run of one subject.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Wall-clock time of the whole run.
    pub wall: Duration,
    /// CPU time the run consumed (per thread, summed over the threads that
    /// worked; see each section for which threads are counted).
    pub cpu: Duration,
    /// Operations completed in the run.
    pub ops: u64,
    /// Context switches of the process's threads during the run (the
    /// Redis sections; `None` where not counted).
    pub switches: Option<u64>,
}

impl Sample {
    /// Wall nanoseconds per operation.
    pub fn wall_ns(&self) -> f64 {
        self.wall.as_nanos() as f64 / self.ops as f64
    }

    /// CPU nanoseconds per operation.
    pub fn cpu_ns(&self) -> f64 {
        self.cpu.as_nanos() as f64 / self.ops as f64
    }

    /// Context switches per operation, when counted.
    pub fn switches_per_op(&self) -> Option<f64> {
        self.switches.map(|switches| switches as f64 / self.ops as f64)
    }
}

/// Context switches so far, voluntary and not, summed over the process's
/// live threads (`/proc/self/task/*/status`; Linux). A thread that ended
/// takes its count with it, so a section counting them keeps its threads.
/// `None` where `/proc` cannot tell.
pub fn process_context_switches() -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let Ok(status) = std::fs::read_to_string(task.ok()?.path().join("status")) else { continue };
        for line in status.lines() {
            if let Some(count) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += count.trim().parse::<u64>().ok()?;
            }
        }
    }
    Some(total)
}

/// CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu() -> Duration {
    cpu_time::ThreadTime::now().as_duration()
}

/// CPU time of the whole process, every thread (`CLOCK_PROCESS_CPUTIME_ID`).
pub fn process_cpu() -> Duration {
    cpu_time::ProcessTime::now().as_duration()
}

/// Run `ops` calls of `op` on this thread; CPU time is this thread's.
pub fn on_this_thread(ops: u64, mut op: impl FnMut(u64)) -> Sample {
    let (started, cpu) = (Instant::now(), thread_cpu());
    for i in 0..ops {
        op(i);
    }
    Sample { wall: started.elapsed(), cpu: thread_cpu() - cpu, ops, switches: None }
}

/// Run `ops` calls of `op` split over `threads` threads started together;
/// CPU time is the sum of the worker threads' own CPU time, wall time is
/// from the first start to the last finish.
pub fn on_threads(threads: u64, ops: u64, op: impl Fn(u64) + Sync) -> Sample {
    let per_thread = ops / threads;
    let barrier = std::sync::Barrier::new(threads as usize + 1);
    let (wall, cpu) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|thread| {
                let (op, barrier) = (&op, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    let cpu = thread_cpu();
                    for i in 0..per_thread {
                        op(i * 7 + thread * 500);
                    }
                    thread_cpu() - cpu
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        let cpu: Duration = workers.into_iter().map(|worker| worker.join().expect("bench thread")).sum();
        (started.elapsed(), cpu)
    });
    Sample { wall, cpu, ops: per_thread * threads, switches: None }
}

/// One subject: a label per sample its run returns (most return one; a
/// Node process returns several), and the run itself.
pub struct Subject<'a> {
    labels: Vec<String>,
    run: Box<dyn FnMut() -> Vec<Sample> + 'a>,
}

impl<'a> Subject<'a> {
    /// A subject yielding one sample per run.
    pub fn new(label: impl Into<String>, mut run: impl FnMut() -> Sample + 'a) -> Self {
        Subject { labels: vec![label.into()], run: Box::new(move || vec![run()]) }
    }

    /// A subject whose run yields one sample per label, in order.
    pub fn many(labels: Vec<String>, run: impl FnMut() -> Vec<Sample> + 'a) -> Self {
        Subject { labels, run: Box::new(run) }
    }
}

/// Which number of a sample a ratio compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// CPU time per op: subject / baseline (lower is better for the subject).
    Cpu,
    /// Wall time per op: subject / baseline.
    Wall,
    /// Throughput: baseline time / subject time (higher is better).
    Throughput,
}

impl Metric {
    fn name(self) -> &'static str {
        match self {
            Metric::Cpu => "CPU/op ratio",
            Metric::Wall => "wall/op ratio",
            Metric::Throughput => "throughput ratio",
        }
    }
}

/// The samples of every label, round by round.
pub struct Results {
    title: String,
    labels: Vec<String>,
    /// `samples[label][round]`.
    samples: Vec<Vec<Sample>>,
    report: String,
}

/// Run `subjects` interleaved for `rounds` rounds after one warm-up pass.
/// `COMPARE_ONLY=text` keeps only the subjects whose label contains `text`
/// (for profiling one path); ratios naming a dropped subject are skipped.
pub fn interleaved(title: &str, rounds: usize, mut subjects: Vec<Subject<'_>>) -> Results {
    if let Ok(only) = std::env::var("COMPARE_ONLY") {
        subjects.retain(|subject| subject.labels.iter().any(|label| label.contains(&only)));
    }
    let labels: Vec<String> = subjects.iter().flat_map(|subject| subject.labels.clone()).collect();
    let mut samples = vec![Vec::with_capacity(rounds); labels.len()];
    // Where each subject's samples go: its labels' first index.
    let first_label: Vec<usize> = subjects
        .iter()
        .scan(0, |next, subject| {
            let first = *next;
            *next += subject.labels.len();
            Some(first)
        })
        .collect();
    let seed = order_seed();
    eprintln!(
        "[{title}] warm-up, then {rounds} interleaved rounds of {} subjects, shuffled (COMPARE_SEED={seed})",
        subjects.len()
    );
    for subject in &mut subjects {
        drop((subject.run)());
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..subjects.len()).collect();
    for round in 0..rounds {
        order.shuffle(&mut rng);
        for &at in &order {
            let subject = &mut subjects[at];
            let got = (subject.run)();
            assert_eq!(got.len(), subject.labels.len(), "subject {:?} returned a wrong sample count", subject.labels);
            for (offset, sample) in got.into_iter().enumerate() {
                samples[first_label[at] + offset].push(sample);
            }
        }
        eprintln!("[{title}] round {}/{rounds} done", round + 1);
    }
    let mut results = Results { title: title.to_string(), labels, samples, report: String::new() };
    results.table();
    results
}

/// One sample of one label, as a child process prints it (a JSON line).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct SampleLine {
    /// The subject's label.
    pub label: String,
    /// Operations measured.
    pub ops: u64,
    /// Wall time, ns.
    pub wall_ns: u64,
    /// CPU time, ns.
    pub cpu_ns: u64,
}

impl SampleLine {
    /// The sample it carries (context switches are not carried).
    pub fn sample(&self) -> Sample {
        Sample {
            wall: Duration::from_nanos(self.wall_ns),
            cpu: Duration::from_nanos(self.cpu_ns),
            ops: self.ops,
            switches: None,
        }
    }
}

/// Rounds run one per process: `round(n)` runs round `n` in a process of
/// its own (all subjects, interleaved there: see [`Results::lines`]) and
/// returns its samples. A process can be slower or faster as a whole than
/// the next one, by more for one subject than another (why is not known:
/// BENCHMARKS.md, session 21); one round per process puts that spread into
/// the per-round ratios instead of into every round of one run.
pub fn in_processes(title: &str, rounds: usize, mut round: impl FnMut(usize) -> Vec<SampleLine>) -> Results {
    let mut labels: Vec<String> = Vec::new();
    let mut samples: Vec<Vec<Sample>> = Vec::new();
    for n in 0..rounds {
        let lines = round(n);
        if n == 0 {
            labels = lines.iter().map(|line| line.label.clone()).collect();
            samples = vec![Vec::with_capacity(rounds); labels.len()];
        }
        for (at, label) in labels.iter().enumerate() {
            let line = lines.iter().find(|line| &line.label == label).expect("every round measures every label");
            samples[at].push(line.sample());
        }
        eprintln!("[{title}] round {}/{rounds} done (in a process of its own)", n + 1);
    }
    let mut results = Results { title: title.to_string(), labels, samples, report: String::new() };
    results.table_titled("interleaved rounds, one process each");
    results
}

/// The seed of the per-round order: `COMPARE_SEED` to repeat a run's
/// order, else a fresh one (printed).
fn order_seed() -> u64 {
    std::env::var("COMPARE_SEED").ok().and_then(|seed| seed.parse().ok()).unwrap_or_else(rand::random)
}

/// Median and range of a list.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    /// The median.
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
}

impl Spread {
    fn of(mut values: Vec<f64>) -> Spread {
        values.sort_by(f64::total_cmp);
        let median = if values.len() % 2 == 1 {
            values[values.len() / 2]
        } else {
            (values[values.len() / 2 - 1] + values[values.len() / 2]) / 2.0
        };
        Spread { median, min: values[0], max: values[values.len() - 1] }
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digits = if self.median >= 100.0 {
            0
        } else if self.median >= 10.0 {
            1
        } else {
            3
        };
        write!(f, "{:.*} ({:.*}–{:.*})", digits, self.median, digits, self.min, digits, self.max)
    }
}

fn ns(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{:.1} µs", value / 1000.0)
    } else if value >= 100.0 {
        format!("{value:.0} ns")
    } else {
        format!("{value:.1} ns")
    }
}

impl Results {
    fn index(&self, label: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == label)
    }

    fn table(&mut self) {
        self.table_titled("interleaved rounds");
    }

    fn table_titled(&mut self, rounds_are: &str) {
        let rounds = self.samples.first().map_or(0, Vec::len);
        let _ = writeln!(self.report, "\n### {} ({rounds} {rounds_are})\n", self.title);
        let counted = self.samples.iter().flatten().all(|sample| sample.switches.is_some());
        let (switches_head, switches_rule) = if counted { (" context switches/op |", "---|") } else { ("", "") };
        let _ = writeln!(
            self.report,
            "| subject | wall/op median (min–max) | CPU/op median (min–max) |{switches_head} ops/round |"
        );
        let _ = writeln!(self.report, "|---|---|---|{switches_rule}---|");
        for (label, samples) in self.labels.iter().zip(&self.samples) {
            let wall = Spread::of(samples.iter().map(Sample::wall_ns).collect());
            let cpu = Spread::of(samples.iter().map(Sample::cpu_ns).collect());
            let switches = match counted {
                true => format!(" {} |", Spread::of(samples.iter().filter_map(Sample::switches_per_op).collect())),
                false => String::new(),
            };
            let _ = writeln!(
                self.report,
                "| {label} | {} ({}–{}) | {} ({}–{}) |{switches} {} |",
                ns(wall.median),
                ns(wall.min),
                ns(wall.max),
                ns(cpu.median),
                ns(cpu.min),
                ns(cpu.max),
                samples[0].ops
            );
        }
        let _ = writeln!(self.report);
    }

    /// The per-round ratio of `subject` to `baseline`.
    pub fn ratio(&self, subject: &str, baseline: &str, metric: Metric) -> Option<Spread> {
        let (s, b) = (&self.samples[self.index(subject)?], &self.samples[self.index(baseline)?]);
        let per_round = s
            .iter()
            .zip(b)
            .map(|(s, b)| match metric {
                Metric::Cpu => s.cpu_ns() / b.cpu_ns(),
                Metric::Wall => s.wall_ns() / b.wall_ns(),
                Metric::Throughput => b.wall_ns() / s.wall_ns(),
            })
            .collect();
        Some(Spread::of(per_round))
    }

    /// Add a ratio line with its target and verdict to the report.
    /// `target`: the bound, `at_most` whether the ratio must stay at or
    /// below it (else at or above). The verdict uses the median.
    pub fn check(&mut self, what: &str, subject: &str, baseline: &str, metric: Metric, target: Option<(f64, bool)>) {
        let Some(spread) = self.ratio(subject, baseline, metric) else { return };
        let verdict = match target {
            None => "info".to_string(),
            Some((bound, at_most)) => {
                let met = if at_most { spread.median <= bound } else { spread.median >= bound };
                format!("target {} {bound}: {}", if at_most { "≤" } else { "≥" }, if met { "MET" } else { "MISSED" })
            }
        };
        let _ = writeln!(self.report, "- {what}: {} {spread} [{subject} vs {baseline}] — {verdict}", metric.name());
    }

    /// Every sample as a JSON line ([`SampleLine`]): what a child process
    /// of [`in_processes`] prints.
    pub fn lines(&self) -> String {
        let mut out = String::new();
        for (label, samples) in self.labels.iter().zip(&self.samples) {
            for sample in samples {
                let line = SampleLine {
                    label: label.clone(),
                    ops: sample.ops,
                    wall_ns: sample.wall.as_nanos() as u64,
                    cpu_ns: sample.cpu.as_nanos() as u64,
                };
                let _ = writeln!(out, "{}", serde_json::to_string(&line).expect("a sample serializes"));
            }
        }
        out
    }

    /// The section's report so far (markdown).
    pub fn report(&self) -> &str {
        &self.report
    }
}
