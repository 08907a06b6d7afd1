//! Small stand-in for the future `tickwire record`/`inspect` commands, for trying the format:
//!
//! ```text
//! cargo run -p tickwire-feeds --example recording_tool -- convert IN.raw OUT.twr [ADAPTER]
//! cargo run -p tickwire-feeds --example recording_tool -- back IN.twr > OUT.raw
//! cargo run -p tickwire-feeds --example recording_tool -- info IN.twr
//! ```

use std::io::BufReader;
use std::process::ExitCode;

use tickwire_feeds::recording::{convert, Header, Reader, RecordingError, WriterOptions};

fn run(args: &[String]) -> Result<(), RecordingError> {
    match args {
        [cmd, input, output, rest @ ..] if cmd == "convert" => {
            let adapter = rest.first().cloned().unwrap_or_default();
            let header = Header {
                venue: adapter.clone(),
                adapter,
                metadata: vec![("source".into(), input.clone())],
                ..Header::default()
            };
            let file = BufReader::new(std::fs::File::open(input)?);
            let s = convert::raw_to_recording(file, output, header, WriterOptions::default())?;
            eprintln!(
                "{} records ({} blank lines skipped), {} blocks, {} payload bytes -> {} file bytes",
                s.records,
                s.blank_lines,
                s.writer.blocks,
                s.writer.payload_bytes,
                s.writer.file_bytes
            );
            Ok(())
        }
        [cmd, input] if cmd == "back" => {
            let reader = Reader::open(input)?;
            convert::recording_to_raw(&reader, std::io::stdout().lock())?;
            Ok(())
        }
        [cmd, input] if cmd == "info" => {
            let reader = Reader::open(input)?;
            println!("{:#?}", reader.header());
            println!("streams: {:#?}", reader.streams());
            println!("time range (ns): {:?}", reader.time_range());
            println!("blocks: {}", reader.blocks().len());
            println!("recovery: {:#?}", reader.recovery());
            let mut n = 0u64;
            let mut errors = 0u64;
            for r in reader.cursor() {
                match r {
                    Ok(_) => n += 1,
                    Err(e) => {
                        errors += 1;
                        eprintln!("error: {e}");
                    }
                }
            }
            println!("records: {n}, damaged blocks: {errors}");
            Ok(())
        }
        _ => Err(RecordingError::InvalidInput(
            "usage: recording_tool convert IN.raw OUT.twr [ADAPTER] | back IN.twr | info IN.twr"
                .into(),
        )),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("recording_tool: {e}");
            ExitCode::FAILURE
        }
    }
}
