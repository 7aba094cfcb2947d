//! `helpdesk_server::spawn`: a real server on loopback, in-process, as the agents' tests use it.

use std::time::Duration;

#[rocket::async_test]
async fn spawn_serves_on_a_real_port_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let figment = helpdesk_server::config::figment()
        .merge(("address", "127.0.0.1"))
        .merge(("port", 0))
        .merge(("data_dir", dir.path()));
    let server = helpdesk_server::spawn(figment).await.unwrap();
    assert_ne!(server.addr.port(), 0);
    assert_eq!(server.data_dir, dir.path());

    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let health = client.get(format!("{}/health", server.base_url())).send().await.unwrap();
    assert_eq!(health.status(), 200);
    // The bootstrap admin token works over real HTTP.
    let token = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
    let res =
        client.get(format!("{}/api/v1/tickets", server.base_url())).bearer_auth(token.trim()).send().await.unwrap();
    assert_eq!(res.status(), 200);

    let addr = server.addr;
    server.stop().await.unwrap();
    // Stopped means the port no longer answers and the database is released.
    assert!(client.get(format!("http://{addr}/health")).send().await.is_err());
    helpdesk_core::Helpdesk::open(dir.path().join("db"), helpdesk_core::Config::default()).unwrap();
}
