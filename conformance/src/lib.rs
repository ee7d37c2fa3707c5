//! The Bento driver conformance suite (stub: being written).

use std::path::PathBuf;
use std::process::ExitCode;

/// What to test: a plugin file and the options to create its drivers with.
#[derive(Debug, Clone)]
pub struct Target {
    /// Path of the plugin library.
    pub plugin: PathBuf,
    /// Driver options JSON.
    pub options_json: String,
}

impl Target {
    /// Test the plugin at `plugin` with default options.
    pub fn new(plugin: impl Into<PathBuf>) -> Self {
        Target { plugin: plugin.into(), options_json: "{}".to_string() }
    }
    /// Use these driver options (JSON).
    pub fn options(mut self, options_json: impl Into<String>) -> Self {
        self.options_json = options_json.into();
        self
    }
}

/// Run the suite as a libtest-style test binary (`harness = false`).
pub fn libtest_main(_target: Target) -> ExitCode {
    ExitCode::SUCCESS
}
