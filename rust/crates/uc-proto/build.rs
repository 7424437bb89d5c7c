fn main() -> Result<(), Box<dyn std::error::Error>> {
    tonic_prost_build::configure().compile_protos(
        &[
            "proto/etcd/etcdserver/etcdserverpb/rpc.proto",
            "proto/uc/peer.proto",
        ],
        &["proto"],
    )?;
    Ok(())
}
