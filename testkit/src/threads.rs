//! What the threads of this process did, for tests that check where work
//! runs (e.g. that requests on the host's runtime wake no plugin thread).

/// Voluntary context switches so far of this process's plugin-runtime
/// threads (named `bento-plugin-rt`, every plugin's): how often they woke
/// up. Linux only (`/proc/self/task/*/status`).
#[cfg(target_os = "linux")]
pub fn plugin_thread_switches() -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let path = task.expect("task entry").path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !name.starts_with("bento-plugin-rt") {
            continue;
        }
        let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
        total += status
            .lines()
            .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|count| count.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}
