//! Config layering (default < file < env < flag) and the one-line errors for bad input.

mod common;
use common::{Sandbox, assert_usage_error};

fn show(sb: &Sandbox, env: &[(&str, &str)], args: &[&str]) -> String {
    let mut c = sb.cmd();
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.args(args).args(["config", "show"]).output().unwrap();
    common::stdout_ok(&out)
}

fn line<'a>(text: &'a str, section: &str, key: &str) -> &'a str {
    let mut current = "";
    for l in text.lines() {
        if l.starts_with('[') {
            current = l.trim_matches(|c| c == '[' || c == ']');
        } else if current == section && l.starts_with(&format!("{key} = ")) {
            return l;
        }
    }
    panic!("no {section}.{key} in:\n{text}")
}

#[test]
fn precedence_is_default_then_file_then_env_then_flag() {
    let sb = Sandbox::new();
    let d = show(&sb, &[], &[]);
    assert_eq!(line(&d, "", "route"), "route = \"auto\"  # default");
    assert_eq!(line(&d, "", "theme"), "theme = \"default\"  # default");
    assert_eq!(line(&d, "local", "threads"), "threads = 0  # default");
    assert_eq!(
        line(&d, "local", "model"),
        "model = \"smollm2-135m\"  # default"
    );

    sb.write_config(
        "route = \"local\"\ntheme = \"light\"\n[local]\nthreads = 3\nmodel = \"/m/file.gguf\"\n",
    );
    let f = show(&sb, &[], &[]);
    assert_eq!(line(&f, "", "route"), "route = \"local\"  # file");
    assert_eq!(line(&f, "", "theme"), "theme = \"light\"  # file");
    assert_eq!(line(&f, "local", "threads"), "threads = 3  # file");
    // A key the file does not set keeps its default.
    assert_eq!(
        line(&f, "local", "max_tokens"),
        "max_tokens = 512  # default"
    );

    let env = [
        ("TANDEM_ROUTE", "cloud"),
        ("TANDEM_THEME", "high-contrast"),
        ("TANDEM_LOCAL__THREADS", "5"),
        ("TANDEM_LOCAL__MODEL", "/env/m.gguf"),
    ];
    let e = show(&sb, &env, &[]);
    assert_eq!(line(&e, "", "route"), "route = \"cloud\"  # env");
    assert_eq!(line(&e, "", "theme"), "theme = \"high-contrast\"  # env");
    assert_eq!(line(&e, "local", "threads"), "threads = 5  # env");
    assert_eq!(line(&e, "local", "model"), "model = \"/env/m.gguf\"  # env");

    let fl = show(
        &sb,
        &env,
        &[
            "--route",
            "auto",
            "--theme",
            "default",
            "--model",
            "/flag/m.gguf",
        ],
    );
    assert_eq!(line(&fl, "", "route"), "route = \"auto\"  # flag");
    assert_eq!(line(&fl, "", "theme"), "theme = \"default\"  # flag");
    assert_eq!(
        line(&fl, "local", "model"),
        "model = \"/flag/m.gguf\"  # flag"
    );
    assert_eq!(line(&fl, "local", "threads"), "threads = 5  # env");
}

#[test]
fn env_can_define_a_provider_and_show_never_prints_a_key() {
    let sb = Sandbox::new();
    let env = [
        (
            "TANDEM_PROVIDERS__OPENAI__BASE_URL",
            "https://api.example.com/v1",
        ),
        ("TANDEM_PROVIDERS__OPENAI__API_KEY_ENV", "OPENAI_API_KEY"),
        ("OPENAI_API_KEY", "sk-test-secret-value-1234"),
    ];
    let out = show(&sb, &env, &[]);
    assert!(
        out.contains("base_url = \"https://api.example.com/v1\"  # env"),
        "{out}"
    );
    assert!(!out.contains("sk-test-secret-value-1234"));
}

#[test]
fn config_file_flag_is_used_and_must_exist() {
    let sb = Sandbox::new();
    let f = sb.path().join("other.toml");
    std::fs::write(&f, "route = \"cloud\"\n").unwrap();
    let out = show(&sb, &[], &["--config", f.to_str().unwrap()]);
    assert!(out.contains("route = \"cloud\"  # file"));
    let out = sb
        .cmd()
        .args(["--config", "/nonexistent/x.toml", "config", "show"])
        .output()
        .unwrap();
    let err = assert_usage_error(&out);
    assert!(err.contains("/nonexistent/x.toml"), "{err}");
}

#[test]
fn missing_file_means_defaults() {
    let sb = Sandbox::new();
    let out = show(&sb, &[], &[]);
    assert!(out.contains("not present, defaults apply"), "{out}");
}

fn bad(config: &str, env: &[(&str, &str)], args: &[&str]) -> String {
    let sb = Sandbox::new();
    let f = sb.write_config(config);
    let mut c = sb.cmd();
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.args(args).args(["config", "show"]).output().unwrap();
    let err = assert_usage_error(&out);
    if !config.is_empty() && env.is_empty() && args.is_empty() {
        assert!(
            err.contains(f.to_str().unwrap()),
            "should name the file: {err}"
        );
    }
    err
}

#[test]
fn invalid_toml_names_line_and_column() {
    let err = bad("route = \"auto\"\n[local\nthreads = 2\n", &[], &[]);
    assert!(err.contains("config.toml:2:"), "{err}");
    assert!(err.contains("invalid TOML"), "{err}");
}

#[test]
fn unknown_key_is_named_with_its_table() {
    let err = bad("[local]\nthreds = 2\n", &[], &[]);
    assert!(err.contains("config.toml:2:1"), "{err}");
    assert!(
        err.contains("local.threds") && err.contains("unknown field"),
        "{err}"
    );
    assert!(err.contains("remove or rename"), "{err}");
}

#[test]
fn wrong_type_is_named() {
    let err = bad("[local]\nthreads = \"two\"\n", &[], &[]);
    assert!(err.contains("config.toml:2:11"), "{err}");
    assert!(
        err.contains("local.threads") && err.contains("invalid type"),
        "{err}"
    );
}

#[test]
fn bad_url_and_insecure_http_are_refused() {
    let err = bad("[providers.x]\nbase_url = \"not a url\"\n", &[], &[]);
    assert!(err.contains("providers.x.base_url"), "{err}");
    let err = bad(
        "[providers.x]\nbase_url = \"http://example.com/v1\"\n",
        &[],
        &[],
    );
    assert!(err.contains("allow_insecure_http"), "{err}");
    // Loopback over plain http is fine (a local llama.cpp or Ollama).
    let sb = Sandbox::new();
    sb.write_config("[providers.x]\nbase_url = \"http://127.0.0.1:8080/v1\"\n");
    sb.cmd().args(["config", "show"]).assert().success();
}

#[test]
fn api_key_in_config_is_refused_without_echoing_it() {
    let err = bad(
        "[providers.x]\nbase_url = \"https://a.b/v1\"\napi_key = \"sk-do-not-echo\"\n",
        &[],
        &[],
    );
    assert!(err.contains("never stored in the config"), "{err}");
    assert!(!err.contains("sk-do-not-echo"), "{err}");
}

#[test]
fn unknown_theme_lists_the_choices() {
    let err = bad("theme = \"neon\"\n", &[], &[]);
    assert!(
        err.contains("unknown theme \"neon\"") && err.contains("light"),
        "{err}"
    );
    let err = bad("", &[], &["--theme", "nope"]);
    assert!(err.contains("unknown theme \"nope\""), "{err}");
}

#[test]
fn bad_env_value_names_the_variable() {
    let err = bad("", &[("TANDEM_LOCAL__THREADS", "many")], &[]);
    assert!(err.contains("TANDEM_LOCAL__THREADS"), "{err}");
    let err = bad("", &[("TANDEM_ROUTE", "sideways")], &[]);
    assert!(err.contains("TANDEM_ROUTE"), "{err}");
}

#[test]
fn bad_flags_are_usage_errors() {
    let sb = Sandbox::new();
    let out = sb
        .cmd()
        .args(["--route", "sideways", "config", "show"])
        .output()
        .unwrap();
    let err = assert_usage_error(&out);
    assert!(
        err.contains("sideways") && err.contains("auto, local, cloud"),
        "{err}"
    );
    let out = sb
        .cmd()
        .args(["--log-level", "loud!!", "config", "show"])
        .output()
        .unwrap();
    let err = assert_usage_error(&out);
    assert!(err.contains("bad log level"), "{err}");
}

#[test]
fn unreadable_config_is_an_error() {
    let sb = Sandbox::new();
    // A directory where the file should be: unreadable even for root.
    std::fs::create_dir_all(sb.config_file()).unwrap();
    let out = sb.cmd().args(["config", "show"]).output().unwrap();
    let err = assert_usage_error(&out);
    assert!(err.contains("cannot read config file"), "{err}");
}

#[test]
fn local_dtype_defaults_to_f32_and_rejects_other_widths() {
    let sb = Sandbox::new();
    let d = show(&sb, &[], &[]);
    assert_eq!(line(&d, "local", "dtype"), "dtype = \"f32\"  # default");
    sb.write_config("[local]\ndtype = \"auto\"\n");
    let f = show(&sb, &[], &[]);
    assert_eq!(line(&f, "local", "dtype"), "dtype = \"auto\"  # file");
    let err = bad("[local]\ndtype = \"f64\"\n", &[], &[]);
    assert!(err.contains("local.dtype"), "{err}");
    assert!(err.contains("f32") && err.contains("auto"), "{err}");
}

#[test]
fn attach_caps_and_the_local_engine_have_pinned_defaults() {
    let sb = Sandbox::new();
    let d = show(&sb, &[], &[]);
    assert_eq!(
        line(&d, "attach", "max_bytes"),
        "max_bytes = 262144  # default"
    );
    assert_eq!(
        line(&d, "attach", "max_files"),
        "max_files = 200  # default"
    );
    assert_eq!(
        line(&d, "local", "engine"),
        "engine = \"in-process\"  # default"
    );
    let err = bad("[attach]\nmax_bytes = 0\n", &[], &[]);
    assert!(err.contains("attach.max_bytes"), "{err}");
}

#[test]
fn a_local_tier_off_this_machine_needs_trusted() {
    for url in [
        "https://192.168.1.5:8080/v1",
        "https://127.evil.example/v1",
        "https://localhost.example.com/v1",
    ] {
        let err = bad(
            &format!("[providers.lan]\nbase_url = \"{url}\"\ntier = \"local\"\n"),
            &[],
            &[],
        );
        assert!(
            err.contains("providers.lan.tier") && err.contains("not this machine"),
            "{err}"
        );
        assert!(err.contains("providers.lan.trusted = true"), "{err}");
    }
    let sb = Sandbox::new();
    sb.write_config(
        "[providers.lan]\nbase_url = \"https://192.168.1.5:8080/v1\"\ntier = \"local\"\ntrusted = true\n",
    );
    sb.cmd().args(["config", "show"]).assert().success();
    sb.write_config("[providers.lo]\nbase_url = \"http://[::1]:8080/v1\"\ntier = \"local\"\n");
    sb.cmd().args(["config", "show"]).assert().success();
}

#[test]
fn the_local_engine_must_name_a_local_tier_provider() {
    let err = bad("[local]\nengine = \"ollama\"\n", &[], &[]);
    assert!(
        err.contains("local.engine") && err.contains("no provider named \"ollama\""),
        "{err}"
    );
    let err = bad(
        "[local]\nengine = \"cloudy\"\n[providers.cloudy]\nbase_url = \"https://a.b/v1\"\nmodels = [{ name = \"m\" }]\n",
        &[],
        &[],
    );
    assert!(err.contains("cloud provider"), "{err}");
}

#[test]
fn model_flag_takes_any_model_and_pins_its_tier() {
    let sb = Sandbox::new();
    sb.write_config(
        "[providers.lab]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodels = [{ name = \"tiny\" }]\n\
         [providers.llama]\nbase_url = \"http://127.0.0.1:8/v1\"\ntier = \"local\"\nmodels = [{ name = \"smol\" }]\n",
    );
    let cloud = show(&sb, &[], &["--model", "lab/tiny"]);
    assert_eq!(line(&cloud, "", "route"), "route = \"cloud\"  # flag");
    assert_eq!(
        line(&cloud, "local", "model"),
        "model = \"smollm2-135m\"  # default"
    );
    let server = show(&sb, &[], &["--model", "smol"]);
    assert_eq!(line(&server, "", "route"), "route = \"local\"  # flag");
    assert_eq!(
        line(&server, "local", "engine"),
        "engine = \"llama/smol\"  # flag"
    );
    let kept = show(&sb, &[], &["--model", "tiny", "--route", "auto"]);
    assert_eq!(line(&kept, "", "route"), "route = \"auto\"  # flag");
    let out = sb
        .cmd()
        .args(["--model", "nope", "config", "show"])
        .output()
        .unwrap();
    let err = assert_usage_error(&out);
    assert!(
        err.contains("flag --model") && err.contains("unknown model \"nope\""),
        "{err}"
    );
    assert!(
        err.contains("smollm2-135m (local)") && err.contains("lab/tiny (cloud)"),
        "{err}"
    );
}

#[test]
fn no_color_picks_the_colourless_theme_unless_one_is_chosen() {
    // no-color.org: NO_COLOR set and not empty; a theme the user chose still wins.
    let sb = Sandbox::new();
    let theme =
        |env: &[(&str, &str)], args: &[&str]| line(&show(&sb, env, args), "", "theme").to_string();
    assert_eq!(
        theme(&[("NO_COLOR", "1")], &[]),
        "theme = \"mono\"  # NO_COLOR"
    );
    assert_eq!(
        theme(&[("NO_COLOR", "")], &[]),
        "theme = \"default\"  # default"
    );
    assert_eq!(
        theme(&[("NO_COLOR", "1"), ("TANDEM_THEME", "light")], &[]),
        "theme = \"light\"  # env"
    );
    assert_eq!(
        theme(&[("NO_COLOR", "1")], &["--theme", "light"]),
        "theme = \"light\"  # flag"
    );
    sb.write_config("theme = \"light\"\n");
    assert_eq!(
        theme(&[("NO_COLOR", "1")], &[]),
        "theme = \"light\"  # file"
    );
}
