//! Compiles `proto/herald/v1/*.proto` without a system `protoc` (protox is a
//! pure-Rust protobuf compiler) and writes the descriptor set for reflection.
use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["herald/v1/agent.proto", "herald/v1/admin.proto"];
    let fds = protox::compile(protos, ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("herald_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .codec_path("crate::codec::LeanCodec")
        .compile_fds(fds)?;
    for p in protos {
        println!("cargo:rerun-if-changed=proto/{p}");
    }
    Ok(())
}
