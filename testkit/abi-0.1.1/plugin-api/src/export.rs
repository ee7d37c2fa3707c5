//! The one macro a plugin calls.

/// Export a plugin: its root module, metadata and the API-version marker.
///
/// ```text
/// export_plugin! { name: "redis", layers: [remote], driver: RedisDriver }
/// export_plugin! { name: "redis", layers: [remote], driver: RedisDriver, bus: RedisBus }
/// export_plugin! { name: "nats", bus: NatsBus }
/// ```
///
/// `layers` lists `local` (usable as an L1) and/or `remote` (usable as an
/// L2). Use it once per cdylib crate (`crate-type = ["cdylib"]`).
#[macro_export]
macro_rules! export_plugin {
    (name: $name:expr, layers: [$($layer:ident),* $(,)?], driver: $driver:ty $(, bus: $bus:ty)? $(,)?) => {
        $crate::__export_plugin_impl! {
            name: $name,
            layers: [$($layer),*],
            driver: { Some($crate::DriverAdapter::<$driver>::create) },
            driver_schema: { Some($crate::__private::schemars::schema_for!(<$driver as $crate::CacheDriver>::Options)) },
            bus: { $crate::__export_plugin_impl!(@bus $($bus)?) },
            bus_schema: { $crate::__export_plugin_impl!(@bus_schema $($bus)?) },
        }
    };
    (name: $name:expr, bus: $bus:ty $(,)?) => {
        $crate::__export_plugin_impl! {
            name: $name,
            layers: [],
            driver: { None },
            driver_schema: { None::<$crate::__private::schemars::Schema> },
            bus: { Some($crate::BusAdapter::<$bus>::create) },
            bus_schema: { Some($crate::__private::schemars::schema_for!(<$bus as $crate::CacheBus>::Options)) },
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_plugin_impl {
    (@bus) => { None };
    (@bus $bus:ty) => { Some($crate::BusAdapter::<$bus>::create) };
    (@bus_schema) => { None::<$crate::__private::schemars::Schema> };
    (@bus_schema $bus:ty) => { Some($crate::__private::schemars::schema_for!(<$bus as $crate::CacheBus>::Options)) };
    (
        name: $name:expr,
        layers: [$($layer:ident),*],
        driver: { $driver:expr },
        driver_schema: { $driver_schema:expr },
        bus: { $bus:expr },
        bus_schema: { $bus_schema:expr },
    ) => {
        const _: () = {
            use $crate::__private::abi_stable::std_types::RString;
            use $crate::abi::{FfiBusBox, FfiDriverBox, FfiDriverConfig, FfiFut};

            type CreateDriver = fn(RString, FfiDriverConfig) -> FfiFut<FfiDriverBox>;
            type CreateBus = fn(RString) -> FfiFut<FfiBusBox>;
            const CREATE_DRIVER: Option<CreateDriver> = $driver;
            const CREATE_BUS: Option<CreateBus> = $bus;

            fn schema_json(schema: Option<$crate::__private::schemars::Schema>) -> RString {
                match schema {
                    Some(schema) => $crate::__private::serde_json::to_string(&schema)
                        .unwrap_or_else(|_| "null".to_string())
                        .into(),
                    None => "null".into(),
                }
            }

            extern "C" fn metadata() -> $crate::abi::PluginMetadata {
                let mut layers = $crate::abi::Layers::default();
                $( layers.$layer = true; )*
                $crate::abi::PluginMetadata {
                    name: RString::from($name),
                    version: RString::from(env!("CARGO_PKG_VERSION")),
                    api_version: RString::from($crate::API_VERSION),
                    layers,
                    provides_driver: CREATE_DRIVER.is_some(),
                    provides_bus: CREATE_BUS.is_some(),
                    driver_options_schema: schema_json($driver_schema),
                    bus_options_schema: schema_json($bus_schema),
                }
            }

            extern "C" fn create_driver(options: RString, config: FfiDriverConfig) -> FfiFut<FfiDriverBox> {
                match CREATE_DRIVER {
                    Some(create) => create(options, config),
                    None => $crate::abi::unsupported_future("this plugin provides no cache driver"),
                }
            }

            extern "C" fn create_bus(options: RString) -> FfiFut<FfiBusBox> {
                match CREATE_BUS {
                    Some(create) => create(options),
                    None => $crate::abi::unsupported_future("this plugin provides no bus"),
                }
            }

            extern "C" fn configure_runtime(worker_threads: u32) -> bool {
                $crate::PluginRuntime::configure(worker_threads as usize)
            }

            fn root_module() -> $crate::abi::PluginModRef {
                use $crate::__private::abi_stable::prefix_type::PrefixTypeTrait;
                $crate::abi::PluginMod { metadata, create_driver, create_bus, configure_runtime }.leak_into_prefix()
            }

            /// The API-version marker the host probes before loading.
            #[export_name = "bento_plugin_api_version"]
            pub extern "C" fn bento_plugin_api_version() -> *const ::std::os::raw::c_char {
                $crate::abi::API_VERSION_CSTR.as_ptr().cast()
            }

            // What `#[abi_stable::export_root_module]` expands to, spelled
            // with `$crate` paths so plugin crates need no direct
            // dependency on abi_stable. The symbol name is checked in
            // bento-plugin-api's tests.
            #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
            pub static BENTO_ROOT_MODULE_LOADER: $crate::__private::abi_stable::library::LibHeader = {
                extern "C" fn erased_module() -> $crate::__private::abi_stable::library::RootModuleResult {
                    $crate::__private::abi_stable::library::__call_root_module_loader(root_module)
                }
                // SAFETY: `erased_module` returns the root module of type
                // `PluginModRef`, exactly the module type given here.
                unsafe {
                    $crate::__private::abi_stable::library::LibHeader::from_constructor::<$crate::abi::PluginModRef>(
                        erased_module,
                        $crate::__private::abi_stable::library::CheckTypeLayout::Yes,
                    )
                }
            };
        };
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_module_symbol_matches_abi_stable() {
        assert_eq!(abi_stable::library::ROOT_MODULE_LOADER_NAME, "_1as_0lib_1header_0root_bmodule_bloader");
    }
}
