//! Bakes the git commit into the binary so `berth --version` names its
//! exact build (content-addressed images deserve a content-addressed init).
fn main() {
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    println!("cargo:rerun-if-env-changed=GIT_COMMIT_ID");
    let commit = std::env::var("GIT_COMMIT_ID").ok().or_else(|| {
        let out = std::process::Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    if let Some(c) = commit {
        println!("cargo:rustc-env=GIT_COMMIT_ID={c}");
    }
}
