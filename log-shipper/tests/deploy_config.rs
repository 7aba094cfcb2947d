//! The log-shipper configuration shipped in the Kubernetes ConfigMap
//! (deploy/k8s/base/config/shipper.toml) is accepted by the real binary with the flags the
//! pod adds, and a broken copy of it is not.

use std::path::Path;
use std::process::Command;

fn check(config: &Path, positions: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_log-shipper"))
        .arg("--check-config")
        .arg("--config")
        .arg(config)
        .arg("--positions")
        .arg(positions)
        .args(["--label=namespace=helpdesk", "--label=pod=helpdesk-0"])
        .env_clear()
        .output()
        .expect("run log-shipper --check-config")
}

#[test]
fn the_configmap_config_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let positions = dir.path().join("shipper-positions.json");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/k8s/base/config/shipper.toml");
    let out = check(&config, &positions);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("/var/log/helpdesk/server.log*"), "the server's log is an input: {stdout}");
    assert!(stdout.contains("helpdesk-0"), "the pod label from the flags is merged: {stdout}");

    let broken = dir.path().join("shipper.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&broken, text.replace("loki_url =", "loki_ulr =")).unwrap();
    assert_ne!(check(&broken, &positions).status.code(), Some(0), "a misspelt key is refused");
}
