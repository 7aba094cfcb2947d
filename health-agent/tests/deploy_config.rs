//! The health-agent configuration shipped in the Kubernetes ConfigMap
//! (deploy/k8s/base/config/health.toml) is accepted by the real binary, and a broken copy
//! of it is not.

use std::path::Path;
use std::process::Command;

/// `check-config` as the CronJob runs the agent: its `--log` flag names the file on the
/// health-log volume.
fn check(config: &Path) -> std::process::Output {
    let dir = tempfile::tempdir().expect("temp dir");
    Command::new(env!("CARGO_BIN_EXE_health-agent"))
        .args(["check-config", "--config"])
        .arg(config)
        .arg("--log")
        .arg(dir.path().join("probes.log"))
        .env_clear()
        .output()
        .expect("run health-agent check-config")
}

#[test]
fn the_configmap_config_is_accepted() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/k8s/base/config/health.toml");
    let out = check(&config);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("server-live") && stdout.contains("server-ready"), "both targets resolved: {stdout}");

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("health.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&broken, text.replace("expect_status = 200", "expect_status = 999")).unwrap();
    assert_eq!(check(&broken).status.code(), Some(2), "an impossible status is a config error");
}
