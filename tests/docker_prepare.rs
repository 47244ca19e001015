//! `--env-from-file` and `--template` under the real Docker engine: a real
//! secret (`docker run -v` of a 0400 root file, as Docker and Swarm mount
//! them under /run/secrets) reaching a non-root app, and configs rendered
//! into a tmpfs under `--read-only`; Debian's nginx, copied from this
//! machine into a FROM-scratch image, serving a config berth rendered.
//! Objects are named and removed as in docker.rs (its `Scope`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::docker::{docker_ok, Scope, Stream};
use crate::secrets::SECRET;
use crate::util::http_response;

/// A host directory for the test's secret file, removed on drop.
struct HostDir(PathBuf);

impl HostDir {
    fn new(name: &str) -> HostDir {
        let d = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        HostDir(d)
    }

    /// `content` at `name`, owned by root (the test runs as root), mode 0400.
    fn root_only_file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400)).unwrap();
        p
    }
}

impl Drop for HostDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The JSON lines of a finished container's logs: berth's events and the
/// app's lines.
fn logs_of(name: &str) -> (Vec<Value>, Vec<String>) {
    let (out, err) = Stream::docker(&["logs", "-f", name]).finish();
    let json = out
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (json, err)
}

fn berth_event<'a>(lines: &'a [Value], event: &str) -> &'a Value {
    lines
        .iter()
        .find(|v| v["stream"] == "berth" && v["event"] == event)
        .unwrap_or_else(|| panic!("no {event} event in {lines:#?}"))
}

const APP_TEMPLATE: &str = "db_password = \"${DB_PASSWORD}\"\nlisten = ${PORT:-8080}\n";

#[test]
fn a_docker_secret_0400_reaches_the_non_root_app_and_a_template_renders_into_tmpfs_under_read_only()
{
    let s = Scope::new("secret");
    let host = HostDir::new(&s.name("host"));
    let secret = host.root_only_file("db_password", &format!("{SECRET}\n"));
    let template = host.0.join("app.conf.template");
    std::fs::write(&template, APP_TEMPLATE).unwrap();
    let img = s.image_with(
        "img",
        &[(template, "/templates/app.conf.template".into())],
        "",
    );
    let name = s.name("app");
    let volume = format!("{}:/run/secrets/db_password:ro", secret.display());
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--read-only",
        "--tmpfs",
        "/run/app",
        "-v",
        &volume,
        "-e",
        "DB_PASSWORD_FILE=/run/secrets/db_password",
        "--entrypoint",
        "/berth",
        &img,
        "--user",
        "app",
        "--env-from-file",
        "DB_PASSWORD",
        "--template",
        "/templates/app.conf.template:/run/app/app.conf",
        "--",
        "/introspect",
        "--read",
        "/run/secrets/db_password",
        "--read",
        "/run/app/app.conf",
    ]);
    assert_eq!(docker_ok(&["wait", &name]), "0");
    let (lines, err) = logs_of(&name);
    assert!(err.is_empty(), "{err:?}");
    let start = berth_event(&lines, "start");
    assert_eq!(start["uid"], 1000);
    assert_eq!(start["env_from_file"], serde_json::json!(["DB_PASSWORD"]));
    assert_eq!(start["templates"], serde_json::json!(["/run/app/app.conf"]));
    let app_line = lines
        .iter()
        .find(|v| v["stream"] == "stdout")
        .expect("the app's line");
    // A JSON object line keeps its fields at the top level.
    let v = app_line;
    let env = v["env"].to_string();
    assert!(env.contains(&format!("DB_PASSWORD={SECRET}")), "{env}");
    assert!(!env.contains("DB_PASSWORD_FILE"), "{env}");
    // The app cannot read the secret's file: only berth could, as root.
    assert_eq!(v["reads"][0]["owner"], "0:0 400");
    assert!(
        v["reads"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("Permission denied")),
        "{v}"
    );
    // The config, rendered into the tmpfs under the read-only root.
    assert_eq!(
        v["reads"][1]["text"],
        format!("db_password = \"{SECRET}\"\nlisten = 8080\n")
    );
    assert_eq!(v["reads"][1]["owner"], "1000:1000 640");
    // What the engine knows of the container never holds the secret.
    let inspect = docker_ok(&["inspect", &name]);
    assert!(inspect.contains("DB_PASSWORD_FILE=/run/secrets/db_password"));
    assert!(!inspect.contains(SECRET), "the secret is in docker inspect");
    // berth's own lines (events) never do either.
    for l in lines.iter().filter(|v| v["stream"] == "berth") {
        assert!(!l.to_string().contains(SECRET), "{l}");
    }
    eprintln!(
        "docker-compare | --env-from-file of a 0400 secret, --template into --tmpfs under --read-only | Berth | app uid 1000 got DB_PASSWORD, cannot read the file itself, config 1000:1000 0640"
    );
}

/// The files that make Debian's nginx run in a FROM-scratch image: the
/// binary, every library `ldd` names, and the loader.
fn nginx_files() -> Vec<(PathBuf, PathBuf)> {
    let nginx = PathBuf::from("/usr/sbin/nginx");
    assert!(
        nginx.exists(),
        "no /usr/sbin/nginx: scripts/test installs Debian's nginx (scripts/lib/test-env.sh)"
    );
    let out = Command::new("ldd").arg(&nginx).output().expect("ldd");
    assert!(out.status.success(), "{out:?}");
    let mut files = vec![(nginx.clone(), nginx)];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // `libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x…)` or
        // `/lib64/ld-linux-x86-64.so.2 (0x…)`; vdso has no file.
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            let p = PathBuf::from(p);
            files.push((std::fs::canonicalize(&p).unwrap(), p));
        }
    }
    files
}

/// nginx, as the nginx image runs it, without the image's shell: its own
/// paths (pid, temp files) in the tmpfs, its errors on stderr.
const NGINX_TEMPLATE: &str = "\
daemon off;
worker_processes ${WORKERS:-1};
pid /tmp/nginx.pid;
error_log stderr notice;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path /tmp/client_body;
    proxy_temp_path /tmp/proxy;
    fastcgi_temp_path /tmp/fastcgi;
    uwsgi_temp_path /tmp/uwsgi;
    scgi_temp_path /tmp/scgi;
    server {
        listen ${PORT};
        location / {
            default_type text/plain;
            return 200 \"${GREETING} from ${SERVICE_NAME}, host $host\\n\";
        }
    }
}
";

#[test]
fn nginx_serves_a_config_berth_rendered_under_a_read_only_root() {
    let s = Scope::new("nginx");
    let host = HostDir::new(&s.name("host"));
    let template = host.0.join("nginx.conf.template");
    std::fs::write(&template, NGINX_TEMPLATE).unwrap();
    let mut files = nginx_files();
    files.push((
        template,
        Path::new("/etc/nginx/templates/nginx.conf.template").into(),
    ));
    let img = s.image_with("img", &files, "");
    let name = s.name("nginx");
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--read-only",
        "--tmpfs",
        "/tmp",
        "-e",
        "PORT=8080",
        "-e",
        "GREETING=hello",
        "-e",
        "SERVICE_NAME=berth-test",
        "--entrypoint",
        "/berth",
        &img,
        "--user",
        "app",
        "--stop-signal",
        "QUIT",
        "--template",
        "/etc/nginx/templates/nginx.conf.template:/tmp/nginx.conf",
        "--",
        "/usr/sbin/nginx",
        "-e",
        "stderr",
        "-c",
        "/tmp/nginx.conf",
    ]);
    let logs = Stream::docker(&["logs", "-f", &name]);
    // nginx says so once its workers run (error_log notice, on stderr).
    logs.out.wait_for("nginx's start worker process", |l| {
        l.contains("start worker process")
    });
    let ip = docker_ok(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        &name,
    ]);
    let answer = http_response(&ip, 8080, "/", "berth.example");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.ends_with("\r\n\r\nhello from berth-test, host berth.example\n"),
        "{answer}"
    );
    docker_ok(&["stop", &name]);
    assert_eq!(docker_ok(&["wait", &name]), "0");
    let (out, _) = logs.finish();
    let lines: Vec<Value> = out
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let start = berth_event(&lines, "start");
    assert_eq!(start["uid"], 1000);
    assert_eq!(start["templates"], serde_json::json!(["/tmp/nginx.conf"]));
    eprintln!(
        "docker-compare | nginx from a --template config in --tmpfs under --read-only | Berth | {} (uid 1000)",
        answer.lines().next().unwrap_or("")
    );
}
