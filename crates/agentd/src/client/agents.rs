//! `agentd agents list|get|create|update|delete|export`: agents as YAML or
//! JSON files, so they can live in version control. `export` writes the
//! document that `create -f` and `update -f` read.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::http::{segment, Api};
use super::output::{cell, pretty, table};
use super::{profile, ClientError, ServerArgs};

#[derive(Debug, Args)]
pub struct AgentsArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: AgentsCommand,
}

#[derive(Debug, Subcommand)]
enum AgentsCommand {
    /// List the agents (a table, or JSON with --json).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Print an agent and its current version as JSON.
    Get { id: String },
    /// Create an agent from a YAML or JSON file; prints its id.
    Create {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Apply a file to an agent: its name and cache flags, and a new version
    /// when the configuration changed; prints the current version id.
    Update {
        id: String,
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Delete an agent with its versions and jobs.
    Delete { id: String },
    /// Print an agent as a file that `create -f` accepts.
    Export {
        id: String,
        #[arg(long, value_enum, default_value_t = Format::Yaml)]
        format: Format,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

/// An agent as a file: the agent's own fields and its current version.
#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct AgentFile {
    name: String,
    engine_class_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    disable_cache: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cache_failed_jobs: Option<bool>,
    #[serde(default)]
    input_definitions: Vec<Value>,
    #[serde(default = "empty_object")]
    engine_config: Value,
}

fn empty_object() -> Value {
    json!({})
}

impl AgentFile {
    fn read(path: &Path) -> Result<Self, ClientError> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            ClientError::usage(format!("cannot read {}: {error}", path.display()))
        })?;
        Self::parse(&text, is_json_path(path))
            .map_err(|error| ClientError::usage(format!("{}: {error}", path.display())))
    }

    fn parse(text: &str, json: bool) -> Result<Self, String> {
        if json {
            serde_json::from_str(text).map_err(|e| e.to_string())
        } else {
            // YAML 1.2 reads JSON documents too.
            serde_norway::from_str(text).map_err(|e| e.to_string())
        }
    }

    fn render(&self, format: Format) -> Result<String, ClientError> {
        match format {
            Format::Json => serde_json::to_string_pretty(self)
                .map(|text| text + "\n")
                .map_err(|e| ClientError::failed(e.to_string())),
            Format::Yaml => {
                serde_norway::to_string(self).map_err(|e| ClientError::failed(e.to_string()))
            }
        }
    }

    /// The fields of a new version (`POST /v1/agents/` and `.../versions/`).
    fn version_fields(&self) -> Map<String, Value> {
        let mut body = Map::new();
        if let Some(name) = &self.version_name {
            body.insert("version_name".into(), json!(name));
        }
        if let Some(description) = &self.description {
            body.insert("description".into(), json!(description));
        }
        body.insert("input_definitions".into(), json!(self.input_definitions));
        body.insert("engine_config".into(), self.engine_config.clone());
        body
    }

    /// The agent's own fields that differ from `agent` (all of them for a
    /// new agent), for `PUT /v1/agents/{id}/`.
    fn agent_changes(&self, agent: Option<&Value>) -> Map<String, Value> {
        let mut changes = Map::new();
        let differs = |field: &str, wanted: &Value| agent.is_none_or(|a| &a[field] != wanted);
        let name = json!(self.name);
        if agent.is_some() && differs("name", &name) {
            changes.insert("name".into(), name);
        }
        for (field, wanted) in [
            ("disable_cache", self.disable_cache),
            ("cache_failed_jobs", self.cache_failed_jobs),
        ] {
            if let Some(wanted) = wanted.map(Value::Bool) {
                if differs(field, &wanted) {
                    changes.insert(field.into(), wanted);
                }
            }
        }
        changes
    }

    fn same_version_as(&self, version: &Value) -> bool {
        let text = |field: &str| version[field].as_str().map(str::to_owned);
        (self.version_name.is_none() || self.version_name == text("version_name"))
            && (self.description.is_none() || self.description == text("description"))
            && json!(self.input_definitions) == version["input_definitions"]
            && self.engine_config == version["engine_config"]
    }
}

fn is_json_path(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"))
}

pub async fn run(args: AgentsArgs) -> Result<ExitCode, ClientError> {
    let api = Api::new(profile::resolve(args.server.profile.as_deref())?)?;
    match args.command {
        AgentsCommand::List { json } => list(&api, json).await,
        AgentsCommand::Get { id } => {
            let agent = api.get(&agent_path(&id)).await?;
            let version = api
                .get(&format!("{}versions/current/", agent_path(&id)))
                .await?;
            println!(
                "{}",
                pretty(&json!({"agent": agent, "current_version": version}))
            );
            Ok(())
        }
        AgentsCommand::Create { file } => create(&api, &AgentFile::read(&file)?).await,
        AgentsCommand::Update { id, file } => update(&api, &id, &AgentFile::read(&file)?).await,
        AgentsCommand::Delete { id } => {
            api.delete(&agent_path(&id)).await?;
            eprintln!("deleted agent {id}");
            Ok(())
        }
        AgentsCommand::Export { id, format } => {
            print!("{}", export(&api, &id).await?.render(format)?);
            Ok(())
        }
    }?;
    Ok(ExitCode::SUCCESS)
}

fn agent_path(id: &str) -> String {
    format!("/v1/agents/{}/", segment(id))
}

async fn list(api: &Api, as_json: bool) -> Result<(), ClientError> {
    let agents = api.get_all("/v1/agents/").await?;
    if as_json {
        println!("{}", pretty(&Value::Array(agents)));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = agents
        .iter()
        .map(|agent| {
            [
                "id",
                "name",
                "engine_class_id",
                "current_version_id",
                "job_count",
            ]
            .iter()
            .map(|field| cell(&agent[*field]))
            .collect()
        })
        .collect();
    print!(
        "{}",
        table(&["ID", "NAME", "ENGINE", "VERSION", "JOBS"], &rows)
    );
    Ok(())
}

async fn create(api: &Api, file: &AgentFile) -> Result<(), ClientError> {
    let mut body = file.version_fields();
    body.insert("name".into(), json!(file.name));
    body.insert("engine_class_id".into(), json!(file.engine_class_id));
    let agent = api.post("/v1/agents/", &Value::Object(body)).await?;
    let id = agent["id"]
        .as_str()
        .ok_or_else(|| ClientError::failed("the server's answer has no agent id"))?;
    let changes = file.agent_changes(None);
    if !changes.is_empty() {
        api.put(&agent_path(id), &Value::Object(changes)).await?;
    }
    println!("{id}");
    Ok(())
}

async fn update(api: &Api, id: &str, file: &AgentFile) -> Result<(), ClientError> {
    let agent = api.get(&agent_path(id)).await?;
    if agent["engine_class_id"].as_str() != Some(file.engine_class_id.as_str()) {
        return Err(ClientError::usage(format!(
            "agent {id} runs {}, the file names {}: an agent's engine cannot change (create a new agent)",
            cell(&agent["engine_class_id"]),
            file.engine_class_id
        )));
    }
    let changes = file.agent_changes(Some(&agent));
    if !changes.is_empty() {
        api.put(&agent_path(id), &Value::Object(changes)).await?;
    }
    let current = api
        .get(&format!("{}versions/current/", agent_path(id)))
        .await?;
    if file.same_version_as(&current) {
        eprintln!("configuration unchanged; current version stays");
        println!("{}", cell(&current["id"]));
        return Ok(());
    }
    let version = api
        .post(
            &format!("{}versions/", agent_path(id)),
            &Value::Object(file.version_fields()),
        )
        .await?;
    eprintln!("new version created");
    println!("{}", cell(&version["id"]));
    Ok(())
}

async fn export(api: &Api, id: &str) -> Result<AgentFile, ClientError> {
    let agent = api.get(&agent_path(id)).await?;
    let version = api
        .get(&format!("{}versions/current/", agent_path(id)))
        .await?;
    let text = |value: &Value| value.as_str().map(str::to_owned);
    Ok(AgentFile {
        name: text(&agent["name"]).unwrap_or_default(),
        engine_class_id: text(&agent["engine_class_id"]).unwrap_or_default(),
        version_name: text(&version["version_name"]),
        description: text(&version["description"]).filter(|d| !d.is_empty()),
        disable_cache: agent["disable_cache"].as_bool(),
        cache_failed_jobs: agent["cache_failed_jobs"].as_bool(),
        input_definitions: version["input_definitions"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
        engine_config: version["engine_config"].clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AgentFile {
        AgentFile {
            name: "invoices".into(),
            engine_class_id: "MultimodalExtractionEngine".into(),
            version_name: Some("v2".into()),
            description: None,
            disable_cache: Some(true),
            cache_failed_jobs: Some(false),
            input_definitions: vec![
                json!({"key": "text", "data_type": "text/plain", "description": "x"}),
            ],
            engine_config: json!({"model": "m", "text": "${text}", "output_schema": {"type": "object"}}),
        }
    }

    #[test]
    fn yaml_and_json_exports_read_back_the_same() {
        let file = sample();
        for (format, json) in [(Format::Yaml, false), (Format::Json, true)] {
            let text = file.render(format).unwrap();
            assert_eq!(AgentFile::parse(&text, json).unwrap(), file, "{text}");
        }
        // A JSON document also reads as YAML.
        let text = file.render(Format::Json).unwrap();
        assert_eq!(AgentFile::parse(&text, false).unwrap(), file);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let error = AgentFile::parse("name: a\nengine_class_id: E\nmodel: x\n", false).unwrap_err();
        assert!(error.contains("model"), "{error}");
    }

    #[test]
    fn only_changed_agent_fields_are_sent() {
        let file = sample();
        let agent = json!({"name": "invoices", "disable_cache": false, "cache_failed_jobs": false});
        let changes = file.agent_changes(Some(&agent));
        assert_eq!(Value::Object(changes), json!({"disable_cache": true}));
    }
}
