//! The order the config file gives things, kept: providers are tried as the file lists them.

mod common;
use common::Sandbox;

#[test]
fn providers_are_tried_in_the_order_the_file_lists_them() {
    // Both answer; the one written first answers, whatever the names' alphabetical order.
    let zz = common::canned_cloud("from zz");
    let aa = common::canned_cloud("from aa");
    let sb = Sandbox::new();
    sb.write_config(
        &(common::provider_toml("zz", zz, "m-zz") + &common::provider_toml("aa", aa, "m-aa")),
    );
    let out = sb
        .cmd()
        .args(["--route", "cloud", "-p", "hi"])
        .output()
        .unwrap();
    assert_eq!(common::stdout_ok(&out), "from zz\n");
    let list = common::stdout_ok(&sb.cmd().args(["models", "list"]).output().unwrap());
    let (z, a) = (list.find("zz/m-zz").unwrap(), list.find("aa/m-aa").unwrap());
    assert!(z < a, "{list}");
}
