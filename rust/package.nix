# The Rust workspace: every UltraCloud daemon and the `uc` CLI. Tests run
# against the golden manifests in hosts/, so those are part of the source.
{
  lib,
  rustPlatform,
  protobuf,
  llvmPackages,
  libbpf,
  linuxHeaders,
}: let
  fs = lib.fileset;
in
  rustPlatform.buildRustPackage {
    pname = "ultracloud";
    version = (lib.importTOML ./Cargo.toml).workspace.package.version;

    src = fs.toSource {
      root = ../.;
      fileset = fs.unions [
        ./Cargo.toml
        ./Cargo.lock
        ./crates
        ./tools
        (fs.fileFilter (file: file.name == "manifest.json") ../hosts)
      ];
    };
    cargoRoot = "rust";
    buildAndTestSubdir = "rust";
    cargoLock.lockFile = ./Cargo.lock;

    # uc-proto compiles etcd's protos at build time.
    nativeBuildInputs = [protobuf];
    # uc-lb's build.rs compiles its XDP programs for the bpf target: with
    # the unwrapped clang (the wrapper adds flags for the host target),
    # against libbpf's and the kernel's headers.
    UC_LB_CLANG = "${llvmPackages.clang-unwrapped}/bin/clang";
    UC_LB_BPF_INCLUDE = "${libbpf}/include:${linuxHeaders}/include";
    # The integration tests need real peers (etcd, etcdctl, nix) and loopback
    # networking; they run in scripts/check, not in the build sandbox.
    doCheck = false;

    meta = {
      description = "UltraCloud daemons and CLI";
      license = lib.licenses.asl20;
      mainProgram = "uc";
    };
  }
