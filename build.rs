// torch-sys links libtorch dynamically but leaves no rpath on our binaries; add one so that
// `cargo run`, `cargo test` and the installed binary find libtorch without LD_LIBRARY_PATH.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
    embed_importer();
    git_commit();
}

// `gradviz import` runs the Python package scripts/gradviz_import; every .py file of it is
// embedded into the binary (src/import.rs), so the binary works without the source tree.
fn embed_importer() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gradviz_import");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("scripts/gradviz_import exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "py"))
        .collect();
    files.sort();
    let mut code = String::from("&[\n");
    for f in &files {
        let name = f.file_name().and_then(|n| n.to_str()).expect("utf-8 file name");
        code += &format!("    ({name:?}, include_str!({:?})),\n", f.display().to_string());
    }
    code += "]\n";
    let out = std::path::Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("importer_files.rs");
    std::fs::write(out, code).expect("write importer_files.rs");
}

// The commit gradviz was built from (uncommitted changes are not detected), recorded in every output's provenance
// (src/provenance.rs); none outside a git checkout or without git, which is no error.
fn git_commit() {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={head}");
    }
    if let Some(refs) = git(&["rev-parse", "--git-path", "refs"]) {
        println!("cargo:rerun-if-changed={refs}");
    }
    let commit = git(&["rev-parse", "HEAD"]).unwrap_or_default();
    println!("cargo:rustc-env=GRADVIZ_GIT_COMMIT={commit}");
}
