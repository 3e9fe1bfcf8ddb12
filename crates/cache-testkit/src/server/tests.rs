use super::*;

#[test]
fn starts_answers_and_dies_on_drop() {
    let mut server = RedisServer::start(ServerConfig::default());
    assert!(server.raw_command("PING").unwrap().starts_with("+PONG"));
    assert!(server.is_running());
    let port = server.port();
    drop(server);
    assert!(TcpStream::connect(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_err());
}

#[test]
fn kill_and_restart_on_the_same_port() {
    let mut server = RedisServer::start(ServerConfig::default());
    let port = server.port();
    server.kill();
    assert!(server.raw_command("PING").is_err());
    server.restart();
    assert_eq!(server.port(), port);
    assert!(server.raw_command("PING").unwrap().starts_with("+PONG"));
}

#[test]
fn requirepass_and_acl_and_unix_variants() {
    let server = RedisServer::start(ServerConfig::default().with_password("pw"));
    assert!(server.raw_command("PING").unwrap().starts_with("-NOAUTH"));
    assert!(server.url().contains(":pw@"));

    let acl = RedisServer::start(ServerConfig::default().with_acl_user(AclUser::new(
        "app",
        "apppw",
        &["~app:*", "+@all"],
    )));
    assert!(!acl.raw_command("PING").unwrap().starts_with("+PONG"));
    assert!(
        acl.raw_command("AUTH app apppw")
            .unwrap()
            .starts_with("+OK")
    );

    let unix = RedisServer::start(ServerConfig::default().unix());
    assert!(unix.raw_command("PING").unwrap().starts_with("+PONG"));
    assert!(unix.url().starts_with("redis+unix://"));
}

#[test]
fn missing_binary_is_a_loud_error_with_the_install_command() {
    let config = ServerConfig::default().with_binary("/nonexistent/redis-server");
    let err = RedisServer::try_start(config).unwrap_err();
    assert!(matches!(err, LaunchError::BinaryMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("apt-get install -y redis-server"));
}
