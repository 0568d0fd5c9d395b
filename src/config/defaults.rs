//! In-code defaults for every section. They let a user's file be checked on its own (with
//! line and column) before layering; a test keeps them equal to the embedded default.toml.

use super::{
    AttachConfig, BudgetConfig, ConfigFile, LocalConfig, Preset, PrintConfig, RouteMode,
    RouterConfig,
};

impl Default for ConfigFile {
    fn default() -> Self {
        ConfigFile {
            route: RouteMode::Auto,
            theme: "default".into(),
            local: LocalConfig::default(),
            router: RouterConfig::default(),
            budget: BudgetConfig::default(),
            print: PrintConfig::default(),
            attach: AttachConfig::default(),
            serve: super::ServeConfig::default(),
            keys: Default::default(),
            providers: Default::default(),
            models: Default::default(),
        }
    }
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            model: "smollm2-135m".into(),
            threads: 0,
            max_tokens: 512,
            temperature: 0.7,
            top_p: 0.9,
            repeat_penalty: 1.15,
            auto_pull: true,
            quant: super::LocalQuant::Q8_0,
            dtype: super::LocalDType::F32,
            engine: "in-process".into(),
        }
    }
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            preset: Preset::Balanced,
            threshold: None,
            escalate: true,
            weights: Default::default(),
        }
    }
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            daily_usd: 0.0,
            monthly_usd: 0.0,
        }
    }
}

impl Default for PrintConfig {
    fn default() -> Self {
        PrintConfig {
            max_stdin_bytes: 1024 * 1024,
        }
    }
}

impl Default for AttachConfig {
    fn default() -> Self {
        AttachConfig {
            max_bytes: 256 * 1024,
            max_files: 200,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_reference_matches_code_defaults() {
        let parsed: ConfigFile = toml::from_str(crate::config::DEFAULT_TOML).unwrap();
        assert_eq!(parsed, ConfigFile::default());
    }
}
