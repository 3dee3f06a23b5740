//! The autoscaling examples of `docker/k8s` (issue 24, item 3) against their schemas, with no
//! cluster: the KEDA `ScaledObject` against KEDA's CRD schema and the plain HPA against the
//! Kubernetes `autoscaling/v2` schema, checked by `tests/k8s-validate/validate.mjs` with the
//! npm packages pinned in its `package-lock.json` (installed with `npm ci` on first use). What
//! they must refuse: a replica count that is no integer, a missing scale target, a trigger
//! whose metadata is not all strings, an unknown kind.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

fn validator() -> PathBuf {
    let dir = repo().join("tests/k8s-validate");
    if !dir.join("node_modules/js-yaml").exists() {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .output()
            .expect("npm runs (scripts/ensure-node.sh installs it)");
        assert!(
            out.status.success(),
            "npm ci in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    dir.join("validate.mjs")
}

/// Runs the validator on `files`: (success, stdout).
fn validate(files: &[&Path]) -> (bool, String) {
    let out = Command::new("node")
        .arg(validator())
        .args(files)
        .output()
        .expect("node runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn manifest(name: &str) -> PathBuf {
    repo().join("docker/k8s").join(name)
}

#[test]
fn the_keda_scaledobject_and_the_hpa_match_their_schemas() {
    let (keda, hpa) = (manifest("keda-scaledobject.yaml"), manifest("hpa.yaml"));
    let (ok, out) = validate(&[&keda, &hpa]);
    assert!(ok, "{out}");
    assert!(out.contains("keda.sh/v1alpha1 ScaledObject"), "{out}");
    assert!(
        out.contains("autoscaling/v2 HorizontalPodAutoscaler"),
        "{out}"
    );
    // Both scale on the gauge the workers export (tests/tests/prometheus.rs reads it from a
    // real Prometheus), the KEDA one with a Prometheus trigger.
    let keda = std::fs::read_to_string(&keda).unwrap();
    assert!(keda.contains("type: prometheus"), "{keda}");
    assert!(
        keda.contains("query: max(mq_workers_needed{queue=\"texts\"})"),
        "{keda}"
    );
    let hpa = std::fs::read_to_string(&hpa).unwrap();
    assert!(hpa.contains("name: mq_workers_needed"), "{hpa}");
}

#[test]
fn broken_manifests_are_refused_naming_the_field() {
    let dir = std::env::temp_dir().join(format!("mq-k8s-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keda = std::fs::read_to_string(manifest("keda-scaledobject.yaml")).unwrap();
    let hpa = std::fs::read_to_string(manifest("hpa.yaml")).unwrap();
    let cases = [
        (
            hpa.replace("minReplicas: 1", "minReplicas: one"),
            "minReplicas must be integer",
        ),
        (
            keda.replace("  scaleTargetRef:", "  scaleTarget:"),
            "required property scaleTargetRef",
        ),
        (
            keda.replace("threshold: \"1\"", "threshold: 1"),
            "threshold must be string",
        ),
        (
            hpa.replace("kind: HorizontalPodAutoscaler", "kind: Autoscaler"),
            "no schema for autoscaling/v2 Autoscaler",
        ),
    ];
    for (i, (text, why)) in cases.iter().enumerate() {
        let file = dir.join(format!("case{i}.yaml"));
        std::fs::write(&file, text).unwrap();
        let (ok, out) = validate(&[&file]);
        assert!(!ok, "case {i} must be refused: {out}");
        assert!(out.contains(why), "case {i}: {out}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
