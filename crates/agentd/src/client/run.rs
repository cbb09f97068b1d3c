//! `agentd run AGENT --input key=value --input doc=@file.pdf`: one sync run,
//! sent as multipart form data (file parts for `@file`), as the SDKs do.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::Value;

use super::http::{segment, Api};
use super::output::{outputs_table, pretty};
use super::{profile, ClientError, ServerArgs};

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The agent's id.
    agent: String,
    /// An input: `key=text`, or `key=@path` to send a file (`key=@@x` sends
    /// the text `@x`). Repeatable.
    #[arg(short = 'i', long = "input", value_name = "KEY=VALUE", value_parser = parse_input)]
    inputs: Vec<Input>,
    /// Run this version of the agent instead of the current one.
    #[arg(long)]
    version: Option<String>,
    /// Print the outputs as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Run even if a cached result exists (X-Skip-Cache).
    #[arg(long)]
    no_cache: bool,
}

#[derive(Clone, Debug, PartialEq)]
enum InputValue {
    Text(String),
    File(PathBuf),
}

#[derive(Clone, Debug)]
struct Input {
    key: String,
    value: InputValue,
}

fn parse_input(raw: &str) -> Result<Input, String> {
    let (key, value) = raw
        .split_once('=')
        .ok_or_else(|| format!("'{raw}' is not KEY=VALUE (or KEY=@file)"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("'{raw}' has no key before '='"));
    }
    let value = match value.strip_prefix('@') {
        Some(rest) if rest.starts_with('@') => InputValue::Text(rest.to_owned()),
        Some("") => return Err(format!("'{raw}': no file name after '@'")),
        Some(path) => InputValue::File(PathBuf::from(path)),
        None => InputValue::Text(value.to_owned()),
    };
    Ok(Input {
        key: key.to_owned(),
        value,
    })
}

pub async fn run(args: RunArgs) -> Result<ExitCode, ClientError> {
    let api = Api::new(profile::resolve(args.server.profile.as_deref())?)?;
    let form = form(&args.inputs).await?;
    let mut path = format!("/v1/agents/run/{}/", segment(&args.agent));
    if let Some(version) = &args.version {
        path.push_str(&format!("versions/{}/", segment(version)));
    }
    let mut request = api
        .request(Method::POST, &path)
        // The server bounds a sync run (504 with the job id after its timeout).
        .timeout(std::time::Duration::from_secs(3600))
        .multipart(form);
    if args.no_cache {
        request = request.header("X-Skip-Cache", "true");
    }
    let outputs = api.send(request).await?;
    let Value::Array(items) = &outputs else {
        return Err(ClientError::failed(format!(
            "expected a list of outputs, got {outputs}"
        )));
    };
    if args.json {
        println!("{}", pretty(&outputs));
    } else {
        print!("{}", outputs_table(items));
    }
    Ok(ExitCode::SUCCESS)
}

async fn form(inputs: &[Input]) -> Result<Form, ClientError> {
    let mut form = Form::new();
    for input in inputs {
        form = match &input.value {
            InputValue::Text(text) => form.text(input.key.clone(), text.clone()),
            InputValue::File(path) => {
                let bytes = tokio::fs::read(path).await.map_err(|error| {
                    ClientError::usage(format!("cannot read {}: {error}", path.display()))
                })?;
                let name = path
                    .file_name()
                    .map_or_else(|| "file".to_owned(), |n| n.to_string_lossy().into_owned());
                let part = Part::bytes(bytes)
                    .file_name(name)
                    .mime_str(content_type(path))
                    .map_err(|error| ClientError::failed(error.to_string()))?;
                form.part(input.key.clone(), part)
            }
        };
    }
    Ok(form)
}

/// The content type of a file part, from its extension (the server checks
/// the bytes themselves against the input's declared type).
fn content_type(path: &std::path::Path) -> &'static str {
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "txt" => "text/plain",
        "md" => "text/markdown",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "json" => "application/json",
        "eml" => "message/rfc822",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_text_files_or_escaped_at_signs() {
        let text = parse_input("text=a=b").unwrap();
        assert_eq!(
            (text.key.as_str(), text.value),
            ("text", InputValue::Text("a=b".into()))
        );
        let file = parse_input("doc=@dir/invoice.pdf").unwrap();
        assert_eq!(file.value, InputValue::File("dir/invoice.pdf".into()));
        let literal = parse_input("handle=@@agentd").unwrap();
        assert_eq!(literal.value, InputValue::Text("@agentd".into()));
        assert!(parse_input("novalue").is_err());
        assert!(parse_input("=x").is_err());
        assert!(parse_input("doc=@").is_err());
    }
}
