//! `conformance`: run the Bento driver conformance suite against a plugin.
//!
//! ```text
//! conformance ./target/release/libmy_driver.so --options '{"url":"redis://127.0.0.1:6379"}'
//! ```

use bento::Plugin;
use bento_conformance::{
    all_bus_cases, all_cases, bench, CaseReport, Outcome, PreflightError, Runner, Suite, Target,
    MAX_CONSECUTIVE_TIMEOUTS,
};
use clap::{Parser, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Run the Bento driver (or bus) conformance suite against a plugin library.
///
/// Exit status: 0 every case passed, 1 a case failed (or no driver could
/// connect), 2 the run could not start (bad arguments or options, a file
/// that is not a plugin, a plugin without what is tested).
#[derive(Debug, Parser)]
#[command(name = "conformance", version, about)]
struct Args {
    /// The plugin library (e.g. target/release/libmy_driver.so). Optional
    /// with --list.
    #[arg(required_unless_present = "list")]
    plugin: Option<PathBuf>,
    /// Driver (or bus) options as a JSON object, or `@file` to read them
    /// from a file.
    #[arg(long, default_value = "{}")]
    options: String,
    /// Base prefix of every case's own prefix (`<P>:<case>-<random>`).
    #[arg(long, default_value = bento_conformance::DEFAULT_BASE_PREFIX)]
    prefix: String,
    /// Run only the cases whose name contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// List the case names and exit.
    #[arg(long)]
    list: bool,
    /// Run the bus suite (the default for a plugin that provides only a bus).
    #[arg(long)]
    bus: bool,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Pretty)]
    format: Format,
    /// Print the plugin's metadata and options schema and exit.
    #[arg(long)]
    describe: bool,
    /// Measure latency percentiles and throughput instead of running the cases.
    #[arg(long)]
    bench: bool,
    /// Operations per measured operation kind and concurrency level.
    #[arg(long, default_value_t = bench::DEFAULT_OPS)]
    bench_ops: usize,
    /// Also run the cases that use the EMPTY prefix: they own and clear the
    /// driver's whole keyspace, so use this only with options pointing at a
    /// private directory, file, database or table.
    #[arg(long)]
    allow_empty_prefix: bool,
    /// Per-case timeout in seconds (a hanging driver fails the case).
    #[arg(long, default_value_t = bento_conformance::DEFAULT_CASE_TIMEOUT.as_secs_f64())]
    timeout: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// One line per case, cargo-test style.
    Pretty,
    /// One JSON object per line per case, then a summary object.
    Json,
    /// A JUnit XML report.
    Junit,
}

/// A case of either suite, as the report loop sees it.
struct Selected {
    name: &'static str,
    run: Box<dyn Fn(&Runner) -> CaseReport>,
}

fn main() -> ExitCode {
    // A panic (the driver's, or a case's) is reported with its message in
    // the case's failure; the default hook would add thread names and
    // backtrace notes to the output.
    std::panic::set_hook(Box::new(|_| {}));
    let args = Args::parse();
    let Some(plugin) = args.plugin.clone() else {
        // --list without a plugin: clap requires the plugin otherwise.
        let suite = if args.bus { Suite::Bus } else { Suite::Driver };
        return list(suite, &args);
    };
    let options = match read_options(&args.options) {
        Ok(options) => options,
        Err(message) => return fatal(args.format, &message),
    };
    let timeout = match Duration::try_from_secs_f64(args.timeout) {
        Ok(timeout) if !timeout.is_zero() => timeout,
        _ => {
            return fatal(args.format, &format!("--timeout must be a positive number of seconds, got {}", args.timeout))
        }
    };
    let mut target = Target::new(&plugin)
        .options(options)
        .prefix(args.prefix.clone())
        .allow_empty_prefix(args.allow_empty_prefix)
        .case_timeout(timeout);
    if args.bus {
        target = target.suite(Suite::Bus);
    }
    let runner = match Runner::new(target) {
        Ok(runner) => runner,
        Err(error) => return fatal(args.format, &format!("cannot load the plugin: {error}")),
    };
    // A target built from a plugin path always has a plugin.
    let Some(plugin) = runner.plugin().cloned() else { return fatal(args.format, "no plugin loaded") };
    if args.describe {
        describe(&plugin);
        return ExitCode::SUCCESS;
    }
    let suite = runner.suite();
    if args.list {
        return list(suite, &args);
    }
    if args.bench {
        if let Err(error) = runner.preflight() {
            return fatal(args.format, &error.to_string());
        }
        return match bench::run(&runner, args.bench_ops) {
            Ok(rows) => {
                print!("{}", bench::table(&rows));
                ExitCode::SUCCESS
            }
            Err(failure) => fatal(args.format, &format!("benchmark failed: {failure}")),
        };
    }
    let cases = selected_cases(suite, args.filter.as_deref());
    if cases.is_empty() {
        let filter = args.filter.as_deref().unwrap_or_default();
        return fatal(args.format, &format!("--filter {filter:?} matches no case (see --list)"));
    }
    let checked = match suite {
        Suite::Driver => runner.preflight(),
        Suite::Bus => runner.bus_preflight(),
    };
    if let Err(error) = checked {
        return preflight_failed(args.format, &error);
    }
    run_cases(&runner, &plugin, suite, cases, &args)
}

fn list(suite: Suite, args: &Args) -> ExitCode {
    let cases = selected_cases(suite, args.filter.as_deref());
    if cases.is_empty() {
        return fatal(args.format, &format!("--filter {:?} matches no case", args.filter.as_deref().unwrap_or("")));
    }
    for case in cases {
        println!("{}", case.name);
    }
    ExitCode::SUCCESS
}

/// The options text, from the argument or `@file`. It must be a JSON
/// object: `''` and `null` are refused rather than read as "defaults", so a
/// shell variable that expanded to nothing is noticed. Whether the driver
/// accepts the object is checked once, before any case.
fn read_options(options: &str) -> Result<String, String> {
    let text = match options.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|error| format!("cannot read options file {path}: {error}"))?
        }
        None => options.to_string(),
    };
    match text.trim() {
        "" => Err("--options is empty; pass a JSON object such as '{}'".to_string()),
        "null" => Err("--options is null; pass a JSON object such as '{}'".to_string()),
        _ => Ok(text),
    }
}

fn selected_cases(suite: Suite, filter: Option<&str>) -> Vec<Selected> {
    let matches = |name: &str| filter.is_none_or(|text| name.contains(text));
    match suite {
        Suite::Driver => all_cases()
            .iter()
            .filter(|case| matches(case.name))
            .map(|case| Selected { name: case.name, run: Box::new(move |runner: &Runner| runner.run_case(case)) })
            .collect(),
        Suite::Bus => all_bus_cases()
            .iter()
            .filter(|case| matches(case.name))
            .map(|case| Selected { name: case.name, run: Box::new(move |runner: &Runner| runner.run_bus_case(case)) })
            .collect(),
    }
}

/// Report an error that stops the run, in the requested format.
fn fatal(format: Format, message: &str) -> ExitCode {
    match format {
        Format::Json => println!("{}", serde_json::json!({ "type": "error", "message": message })),
        Format::Pretty | Format::Junit => eprintln!("error: {message}"),
    }
    ExitCode::from(2)
}

/// The check before any case failed: options refused or a plugin without
/// what is tested (exit 2), or no driver could connect (exit 1: the run's
/// verdict is a failure).
fn preflight_failed(format: Format, error: &PreflightError) -> ExitCode {
    if error.is_usage_error() {
        return fatal(format, &error.to_string());
    }
    let message = format!("{error}; no case was run");
    match format {
        Format::Json => println!("{}", serde_json::json!({ "type": "error", "message": message })),
        Format::Pretty | Format::Junit => eprintln!("error: {message}"),
    }
    ExitCode::FAILURE
}

fn describe(plugin: &Plugin) {
    let info = plugin.info();
    let mut layers = Vec::new();
    if info.local {
        layers.push("local (L1)");
    }
    if info.remote {
        layers.push("remote (L2)");
    }
    println!("plugin:       {}", info.name);
    println!("file:         {}", plugin.path().display());
    println!("version:      {}", info.version);
    println!("api version:  {} (this host: {})", info.api_version, bento_plugin_api::API_VERSION);
    println!("layers:       {}", if layers.is_empty() { "none".to_string() } else { layers.join(", ") });
    println!("driver:       {}", if info.provides_driver { "yes" } else { "no" });
    println!("bus:          {}", if info.provides_bus { "yes" } else { "no" });
    for (title, schema) in [("driver options", &info.driver_options_schema), ("bus options", &info.bus_options_schema)]
    {
        if schema.is_null() {
            continue;
        }
        println!("\n{title}:");
        match schema.get("properties").and_then(|p| p.as_object()) {
            Some(properties) if !properties.is_empty() => {
                let required: Vec<&str> = schema
                    .get("required")
                    .and_then(|r| r.as_array())
                    .map(|r| r.iter().filter_map(|name| name.as_str()).collect())
                    .unwrap_or_default();
                for (name, property) in properties {
                    let kind = property_type(property);
                    let required = if required.contains(&name.as_str()) { " (required)" } else { "" };
                    println!("  {name}: {kind}{required}");
                    if let Some(description) = property.get("description").and_then(|d| d.as_str()) {
                        for line in description.lines() {
                            println!("      {line}");
                        }
                    }
                    if let Some(default) = property.get("default") {
                        println!("      default: {default}");
                    }
                }
            }
            _ => println!("  (none)"),
        }
        println!("\n{title} JSON schema:");
        println!("{}", serde_json::to_string_pretty(schema).unwrap_or_else(|_| schema.to_string()));
    }
}

fn property_type(property: &serde_json::Value) -> String {
    match property.get("type") {
        Some(serde_json::Value::String(kind)) => kind.clone(),
        Some(serde_json::Value::Array(kinds)) => {
            kinds.iter().filter_map(|k| k.as_str()).collect::<Vec<_>>().join(" | ")
        }
        _ => {
            if property.get("$ref").is_some() || property.get("anyOf").is_some() || property.get("oneOf").is_some() {
                "object".to_string()
            } else {
                "any".to_string()
            }
        }
    }
}

fn run_cases(runner: &Runner, plugin: &Plugin, suite: Suite, cases: Vec<Selected>, args: &Args) -> ExitCode {
    let info = plugin.info();
    if args.format == Format::Pretty {
        let what = match suite {
            Suite::Driver => "driver",
            Suite::Bus => "bus",
        };
        println!(
            "running {} {what} cases against plugin `{}` {} ({})\n",
            cases.len(),
            info.name,
            info.version,
            plugin.path().display()
        );
    }
    let total = cases.len();
    let mut reports = Vec::with_capacity(total);
    for case in cases {
        if runner.is_wedged() {
            break;
        }
        if args.format == Format::Pretty {
            print!("test {} ... ", case.name);
            let _ = std::io::stdout().flush();
        }
        let report = (case.run)(runner);
        match args.format {
            Format::Pretty => println!("{}", pretty_status(&report)),
            Format::Json => println!("{}", json_case(&report)),
            Format::Junit => {}
        }
        reports.push(report);
    }
    let not_run = total - reports.len();
    let passed = reports.iter().filter(|r| r.outcome == Outcome::Passed).count();
    let failed = reports.iter().filter(|r| matches!(r.outcome, Outcome::Failed(_))).count();
    let skipped = reports.iter().filter(|r| matches!(r.outcome, Outcome::Skipped(_))).count();
    let stopped = (not_run > 0).then(|| {
        format!(
            "stopped: {MAX_CONSECUTIVE_TIMEOUTS} cases in a row timed out, so the driver no longer answers; \
             {not_run} cases were not run"
        )
    });
    match args.format {
        Format::Pretty => print_pretty_summary(&reports, passed, failed, skipped, stopped.as_deref()),
        Format::Json => println!(
            "{}",
            serde_json::json!({ "type": "summary", "passed": passed, "failed": failed, "skipped": skipped,
                                "not_run": not_run, "stopped": stopped })
        ),
        Format::Junit => print!("{}", junit(&info.name, &reports)),
    }
    if failed == 0 && not_run == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn format_duration(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

fn pretty_status(report: &CaseReport) -> String {
    match &report.outcome {
        Outcome::Passed => format!("ok ({})", format_duration(report.duration)),
        Outcome::Failed(_) => format!("FAILED ({})", format_duration(report.duration)),
        Outcome::Skipped(_) => "skipped".to_string(),
    }
}

fn print_pretty_summary(reports: &[CaseReport], passed: usize, failed: usize, skipped: usize, stopped: Option<&str>) {
    let failures: Vec<(&str, &str)> = reports
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Failed(message) => Some((r.name, message.as_str())),
            _ => None,
        })
        .collect();
    if !failures.is_empty() {
        println!("\nfailures:");
        for (name, message) in &failures {
            println!("\n---- {name} ----\n{message}");
        }
        println!("\nfailures:");
        for (name, _) in &failures {
            println!("    {name}");
        }
    }
    let reasons: Vec<&str> = reports
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Skipped(reason) => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    if let Some(reason) = reasons.first() {
        println!("\n{} skipped: {reason}", reasons.len());
    }
    if let Some(stopped) = stopped {
        println!("\n{stopped}");
    }
    println!();
    if skipped > 0 {
        println!("{passed} passed, {failed} failed, {skipped} skipped");
    } else {
        println!("{passed} passed, {failed} failed");
    }
}

fn json_case(report: &CaseReport) -> serde_json::Value {
    let (outcome, message) = match &report.outcome {
        Outcome::Passed => ("passed", None),
        Outcome::Failed(message) => ("failed", Some(message.as_str())),
        Outcome::Skipped(reason) => ("skipped", Some(reason.as_str())),
    };
    serde_json::json!({
        "type": "case",
        "name": report.name,
        "outcome": outcome,
        "duration_ms": report.duration.as_secs_f64() * 1000.0,
        "message": message,
    })
}

/// Escape text for XML attribute values and text; characters XML 1.0
/// cannot carry at all become U+FFFD.
fn xml_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            '\t' | '\n' | '\r' => escaped.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => escaped.push('\u{FFFD}'),
            c => escaped.push(c),
        }
    }
    escaped
}

fn junit(plugin: &str, reports: &[CaseReport]) -> String {
    let failed = reports.iter().filter(|r| matches!(r.outcome, Outcome::Failed(_))).count();
    let skipped = reports.iter().filter(|r| matches!(r.outcome, Outcome::Skipped(_))).count();
    let total: f64 = reports.iter().map(|r| r.duration.as_secs_f64()).sum();
    let plugin = xml_escape(plugin);
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str(&format!(
        "<testsuites name=\"bento-conformance\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" skipped=\"{skipped}\" time=\"{total:.3}\">\n",
        reports.len()
    ));
    xml.push_str(&format!(
        "  <testsuite name=\"conformance.{plugin}\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" skipped=\"{skipped}\" time=\"{total:.3}\">\n",
        reports.len()
    ));
    for report in reports {
        let open = format!(
            "    <testcase name=\"{}\" classname=\"conformance.{plugin}\" time=\"{:.3}\"",
            xml_escape(report.name),
            report.duration.as_secs_f64()
        );
        match &report.outcome {
            Outcome::Passed => xml.push_str(&format!("{open}/>\n")),
            Outcome::Failed(message) => {
                let first_line = message.lines().next().unwrap_or_default();
                xml.push_str(&format!(
                    "{open}>\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                    xml_escape(first_line),
                    xml_escape(message)
                ));
            }
            Outcome::Skipped(reason) => xml
                .push_str(&format!("{open}>\n      <skipped message=\"{}\"/>\n    </testcase>\n", xml_escape(reason))),
        }
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_escape_handles_markup_and_control_characters() {
        assert_eq!(xml_escape("a<b>&\"'\0\n"), "a&lt;b&gt;&amp;&quot;&apos;\u{FFFD}\n");
    }
}
