//! ABI-level checks: the plugin's metadata and its option validation.

use super::{case, ensure, ensure_eq, Case, CaseContext, CaseResult, Failure};
use bento::{DriverOptions, ErrorKind};
use std::sync::Arc;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(metadata_is_truthful, PluginAbi, "name, versions, layers and options schema are present and valid"),
        case!(unknown_option_rejected, PluginAbi, "an unknown option is refused with InvalidOptions naming the field"),
        case!(malformed_options_rejected, PluginAbi, "options that are not JSON are refused with InvalidOptions"),
    ]
}

async fn metadata_is_truthful(cx: Arc<CaseContext>) -> CaseResult {
    let info = cx.require_plugin()?.info();
    ensure!(!info.name.trim().is_empty(), "the plugin name is empty");
    ensure!(!info.version.trim().is_empty(), "the plugin version is empty");
    ensure!(
        bento_plugin_api::abi::api_versions_compatible(bento_plugin_api::API_VERSION, &info.api_version),
        "the metadata's api_version {:?} is not compatible with this host's {}",
        info.api_version,
        bento_plugin_api::API_VERSION
    );
    ensure!(info.provides_driver, "the metadata says the plugin provides no cache driver");
    ensure!(info.local || info.remote, "the metadata lists no layer (local or remote) the driver can serve");
    ensure!(
        info.driver_options_schema.is_object(),
        "the driver options schema is not a JSON object: {}",
        info.driver_options_schema
    );
    // Truthful: the driver it claims to provide can actually be created.
    let driver = cx.create_driver(DriverOptions::with_prefix(cx.prefix())).await?;
    let _ = driver.disconnect().await;
    Ok(())
}

/// The target's options with one extra field no driver has.
fn options_with_unknown_field(options_json: &str) -> Result<String, Failure> {
    let mut options: serde_json::Value =
        serde_json::from_str(if options_json.trim().is_empty() { "{}" } else { options_json })
            .map_err(|error| Failure::new(format!("the target's options are not JSON: {error}")))?;
    let object = options.as_object_mut().ok_or_else(|| Failure::new("the target's options are not a JSON object"))?;
    object.insert("definitely_not_an_option".to_string(), serde_json::json!(1));
    Ok(options.to_string())
}

async fn unknown_option_rejected(cx: Arc<CaseContext>) -> CaseResult {
    let options = options_with_unknown_field(cx.options_json())?;
    match cx.require_plugin()?.create_driver(&options, DriverOptions::with_prefix(cx.prefix())).await {
        Ok(driver) => {
            let _ = driver.disconnect().await;
            Err(Failure::new(format!("create_driver accepted the unknown option in {options}")))
        }
        Err(bento::Error::Driver(error)) => {
            ensure_eq!(error.kind, ErrorKind::INVALID_OPTIONS, "error kind for an unknown option ({error})");
            ensure!(
                error.message.contains("definitely_not_an_option"),
                "the error does not name the unknown field `definitely_not_an_option`: {error}"
            );
            Ok(())
        }
        Err(other) => Err(Failure::new(format!("expected an InvalidOptions driver error, got: {other}"))),
    }
}

async fn malformed_options_rejected(cx: Arc<CaseContext>) -> CaseResult {
    match cx.require_plugin()?.create_driver("{not json", DriverOptions::with_prefix(cx.prefix())).await {
        Ok(driver) => {
            let _ = driver.disconnect().await;
            Err(Failure::new("create_driver accepted the options `{not json`"))
        }
        Err(bento::Error::Driver(error)) => {
            ensure_eq!(error.kind, ErrorKind::INVALID_OPTIONS, "error kind for malformed options ({error})");
            Ok(())
        }
        Err(other) => Err(Failure::new(format!("expected an InvalidOptions driver error, got: {other}"))),
    }
}
