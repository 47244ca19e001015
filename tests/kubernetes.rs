//! examples/kubernetes.yaml, checked without a cluster (issue 6, part 5):
//! the file is parsed by PyYAML (python3-yaml, which scripts/test installs;
//! serde_yaml is not a dependency) into JSON, and the properties its
//! comments promise are asserted: probes that exec `berth status`, a drain
//! instead of a preStop sleep, a termination grace period above drain +
//! grace + 2 s (berth's options read by berth's own parser, flags over
//! `BERTH_*` variables, defaults included), a restrictive securityContext
//! and resource limits.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

/// Every YAML document of `file`, as JSON.
fn yaml_documents(file: &Path) -> Vec<Value> {
    // Debian's python3, where apt's python3-yaml lands (a pyenv or venv
    // python3 earlier on PATH may lack it).
    let python = if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let out = Command::new(python)
        .args([
            "-c",
            "import json, sys, yaml\n\
             print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("python3: {e} (scripts/test installs python3-yaml)"));
    assert!(
        out.status.success(),
        "PyYAML could not load {} (scripts/test installs python3-yaml): {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("not a string: {s}"))
                .to_string()
        })
        .collect()
}

/// berth's drain and grace for a container, as berth itself would read
/// them from its argv and environment.
fn drain_and_grace(container: &Value) -> (Duration, Duration) {
    let mut argv: Vec<OsString> = strings(&container["command"])
        .into_iter()
        .map(OsString::from)
        .collect();
    argv.extend(strings(&container["args"]).into_iter().map(OsString::from));
    let env: Vec<(OsString, OsString)> = container["env"]
        .as_array()
        .map(|vars| {
            vars.iter()
                .map(|v| {
                    let value = v["value"].as_str().unwrap_or_else(|| {
                        panic!("{v}: berth's options must be plain values to be checked")
                    });
                    (v["name"].as_str().unwrap().into(), value.into())
                })
                .collect()
        })
        .unwrap_or_default();
    let run = match berth::cli::parse(argv, &env) {
        Ok(berth::cli::Invocation::Run(run)) => run,
        Ok(_) => panic!("the container's command is not a berth run"),
        Err(e) => panic!("berth would refuse this command line: {e:?}"),
    };
    let dur = |v: &Option<String>, default: Duration| match v {
        Some(s) => berth::parse::duration(s).unwrap(),
        None => default,
    };
    (
        dur(&run.drain, Duration::ZERO),
        dur(&run.grace, berth::config::DEFAULT_GRACE),
    )
}

#[test]
fn kubernetes_example_probes_drain_grace_and_security_context() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kubernetes.yaml");
    let docs = yaml_documents(&file);
    let deploy = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("a Deployment");
    assert_eq!(deploy["apiVersion"], "apps/v1");
    let pod = &deploy["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];

    // berth is the entrypoint, the app comes after `--`.
    let command = strings(&c["command"]);
    assert_eq!(command[0], "/berth");
    assert_eq!(command.last().unwrap(), "--");
    assert!(!strings(&c["args"]).is_empty());

    // Probes exec berth status: readiness with --ready, liveness without.
    let probe = |which: &str| strings(&c[which]["exec"]["command"]);
    assert_eq!(probe("readinessProbe"), ["/berth", "status", "--ready"]);
    assert_eq!(probe("livenessProbe"), ["/berth", "status"]);

    // A drain instead of a preStop sleep, long enough for the readiness
    // probe to see it, and the stop budget: drain + grace + 2 s below
    // terminationGracePeriodSeconds.
    assert!(c["lifecycle"]["preStop"].is_null(), "no preStop hook");
    let (drain, grace) = drain_and_grace(c);
    assert!(drain > Duration::ZERO, "--drain is set");
    let ready = &c["readinessProbe"];
    let noticed = ready["periodSeconds"].as_u64().unwrap_or(10)
        * ready["failureThreshold"].as_u64().unwrap_or(3);
    assert!(
        drain >= Duration::from_secs(noticed),
        "drain {drain:?} ends before the readiness probe can fail ({noticed} s)"
    );
    let termination = Duration::from_secs(pod["terminationGracePeriodSeconds"].as_u64().unwrap());
    assert!(
        drain + grace + Duration::from_secs(2) < termination,
        "drain {drain:?} + grace {grace:?} + 2 s must be below terminationGracePeriodSeconds {termination:?}"
    );

    // Restrictive securityContext, at the container (pod-level too for
    // runAsNonRoot and seccomp).
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["runAsUser"], 65532);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert!(sc["capabilities"]["add"].is_null(), "no capability added");
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );

    // Resource limits (berth reports the memory limit in its start event).
    let limits = &c["resources"]["limits"];
    assert!(
        limits["memory"].is_string() && limits["cpu"].is_string(),
        "{limits}"
    );
    assert!(c["resources"]["requests"]["memory"].is_string());
}

/// The whole file against the Kubernetes API's own schemas, offline: PyPI's
/// kubernetes-validate (scripts/test installs it with pip) for the newest
/// Kubernetes version it carries, strict (an unknown or misspelt field is
/// an error, not a silently dropped setting). A copy with one misspelt
/// field must fail, so a validator that accepts anything cannot pass this.
#[test]
fn kubernetes_example_validates_strictly_against_the_newest_api_schemas() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kubernetes.yaml");
    let script = r#"
import copy, json, sys, yaml
import kubernetes_validate.utils as kv
version = kv.latest_version()
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
report = {"version": version, "valid": [], "errors": []}
for d in docs:
    try:
        kv.validate(d, version, strict=True)
        report["valid"].append(d["kind"] + "/" + d["metadata"]["name"])
    except kv.ValidationError as e:
        report["errors"].append(d["kind"] + ": " + str(e.message))
bad = copy.deepcopy([d for d in docs if d["kind"] == "Deployment"][0])
bad["spec"]["template"]["spec"]["terminationGracePeriod"] = 20
try:
    kv.validate(bad, version, strict=True)
    report["control"] = None
except kv.ValidationError as e:
    report["control"] = str(e.message)
print(json.dumps(report))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("python3: {e}"));
    assert!(
        out.status.success(),
        "kubernetes-validate did not run (scripts/test installs it: python3 -m pip install \
         kubernetes-validate): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("kubernetes-validate: {r}");
    assert_eq!(r["errors"], json!([]), "{r}");
    assert_eq!(
        r["valid"],
        json!(["Deployment/api", "Service/api"]),
        "every document was checked: {r}"
    );
    let control = r["control"].as_str().unwrap_or_default();
    assert!(control.contains("terminationGracePeriod"), "{r}");
    // A current Kubernetes: 1.3x or later.
    let minor: u32 = r["version"]
        .as_str()
        .and_then(|v| v.strip_prefix("1."))
        .and_then(|m| m.split('.').next()?.parse().ok())
        .unwrap_or(0);
    assert!(minor >= 30, "kubernetes-validate carries only {r}");
}
