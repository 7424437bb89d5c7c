//! Compiles uc-lb's XDP programs (xdp/balancer.c; xdp/decap.c for
//! backends; xdp/pass.c for the peers of veths) for the bpf target with clang, into OUT_DIR/<name>.o,
//! which src/xdp embeds. Needs clang and
//! libbpf's headers (Debian: clang, libbpf-dev; scripts/lib/prereqs.sh
//! installs them). UC_LB_CLANG names another clang; UC_LB_BPF_INCLUDE adds
//! include directories (colon-separated), e.g. libbpf's and the kernel
//! headers' where they are not under /usr/include (Nix).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    for source in SOURCES {
        println!("cargo:rerun-if-changed=xdp/{source}.c");
    }
    println!("cargo:rerun-if-env-changed=UC_LB_CLANG");
    println!("cargo:rerun-if-env-changed=UC_LB_BPF_INCLUDE");
    let clang = std::env::var("UC_LB_CLANG").unwrap_or_else(|_| "clang".to_owned());
    if Command::new(&clang).arg("--version").output().is_err() {
        fail(&format!(
            "`{clang}` not found: uc-lb's XDP program (xdp/balancer.c) is compiled with clang. \
             Install Debian's `clang` and `libbpf-dev` (scripts/lib/prereqs.sh does), or set UC_LB_CLANG."
        ));
    }
    let mut includes: Vec<PathBuf> = std::env::var("UC_LB_BPF_INCLUDE")
        .map(|dirs| std::env::split_paths(&dirs).collect())
        .unwrap_or_default();
    // Debian keeps <asm/types.h> under the multiarch directory.
    let multiarch = match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("aarch64") => "aarch64-linux-gnu",
        _ => "x86_64-linux-gnu",
    };
    includes.push(Path::new("/usr/include").join(multiarch));
    let have_libbpf = includes
        .iter()
        .chain([PathBuf::from("/usr/include")].iter())
        .any(|dir| dir.join("bpf/bpf_helpers.h").exists());
    if !have_libbpf {
        fail(
            "bpf/bpf_helpers.h not found: uc-lb's XDP program needs libbpf's headers. \
             Install Debian's `libbpf-dev` (scripts/lib/prereqs.sh does), or set UC_LB_BPF_INCLUDE.",
        );
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| ".".to_owned()));
    for source in SOURCES {
        let mut cmd = Command::new(&clang);
        cmd.args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror", "-c"])
            .arg(format!("xdp/{source}.c"))
            .arg("-o")
            .arg(out_dir.join(format!("{source}.o")));
        for dir in &includes {
            cmd.arg("-I").arg(dir);
        }
        match cmd.status() {
            Ok(status) if status.success() => {}
            Ok(status) => fail(&format!("{cmd:?} failed ({status})")),
            Err(err) => fail(&format!("{cmd:?}: {err}")),
        }
    }
}

const SOURCES: [&str; 3] = ["balancer", "decap", "pass"];

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    panic!("uc-lb build: {message}");
}
