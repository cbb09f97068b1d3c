//! Tenancy operations: the admin CLI and start-up bootstrap.

use agentd_domain::{Credits, OrganizationId, Scope};
use agentd_storage::Storage;
use anyhow::{bail, Context as _};

use crate::auth::{check_key, generate_key, revoke_key, store_key, KeyCheck};
use crate::cli::{AdminArgs, AdminCommand, CreditsCommand, KeyCommand, OrgCommand};

fn parse_org(text: &str) -> anyhow::Result<OrganizationId> {
    text.parse()
        .with_context(|| format!("'{text}' is not an organization id (a UUID)"))
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let options = agentd_storage::ConnectOptions {
        max_connections: args.db_max_connections,
    };
    let storage = agentd_storage::connect_with(&args.database_url, &options)
        .await
        .with_context(|| {
            format!(
                "opening {}",
                agentd_storage::url_without_password(&args.database_url)
            )
        })?;
    let storage = storage.as_ref();
    match args.command {
        // Connecting applied them.
        AdminCommand::Migrate => println!("migrations applied"),
        AdminCommand::Org(OrgCommand::Create { name }) => {
            let org = storage
                .create_organization(OrganizationId::new(), &name)
                .await?;
            println!("{}", org.id);
        }
        AdminCommand::Key(KeyCommand::Create { org, scopes, name }) => {
            let org = parse_org(&org)?;
            if storage.get_organization(org).await?.is_none() {
                bail!("organization {org} does not exist");
            }
            let scopes = scopes
                .iter()
                .map(|s| Scope::parse(s).map_err(anyhow::Error::msg))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let key = generate_key();
            store_key(storage, org, &name, &key, scopes).await?;
            println!("{key}");
        }
        AdminCommand::Key(KeyCommand::Revoke { key }) => {
            if !revoke_key(storage, &key).await? {
                bail!("no active API key matches");
            }
            println!("revoked");
        }
        AdminCommand::Credits(CreditsCommand::Set { org, amount }) => {
            let org = parse_org(&org)?;
            let credits = Credits::parse(&amount).map_err(anyhow::Error::msg)?;
            if !storage.set_credits(org, credits).await? {
                bail!("organization {org} does not exist");
            }
            println!("balance: {credits}");
        }
        AdminCommand::Credits(CreditsCommand::Show { org }) => {
            let org = parse_org(&org)?;
            let org = storage
                .get_organization(org)
                .await?
                .with_context(|| format!("organization {org} does not exist"))?;
            println!("organization: {} ({})", org.id, org.name);
            println!("balance: {}", org.credits);
            println!("spent: {}", org.spent);
        }
    }
    Ok(())
}

/// Creates the configured organization and key when missing; on an empty
/// database without configuration, creates one of each and prints them once.
pub async fn bootstrap(
    storage: &dyn Storage,
    org_id: Option<&str>,
    api_key: Option<&str>,
) -> anyhow::Result<()> {
    match (org_id, api_key) {
        (Some(org_id), Some(api_key)) => {
            let org = parse_org(org_id).context("AGENTD_BOOTSTRAP_ORG_ID")?;
            if storage.get_organization(org).await?.is_none() {
                storage.create_organization(org, "default").await?;
                tracing::info!(%org, "bootstrap organization created");
            }
            match check_key(storage, api_key).await? {
                KeyCheck::Valid(key) if key.organization_id == org => {}
                KeyCheck::Valid(_) => {
                    bail!("AGENTD_BOOTSTRAP_API_KEY belongs to another organization")
                }
                KeyCheck::Revoked => {
                    tracing::warn!("the bootstrap API key has been revoked; not recreating it")
                }
                KeyCheck::Unknown => {
                    store_key(storage, org, "bootstrap", api_key, Vec::new()).await?;
                    tracing::info!(%org, "bootstrap API key stored");
                }
            }
        }
        (None, None) => {
            if storage.count_organizations().await? == 0 {
                let org = storage
                    .create_organization(OrganizationId::new(), "default")
                    .await?;
                let key = generate_key();
                store_key(storage, org.id, "initial", &key, Vec::new()).await?;
                println!("Created organization {} with API key {key}", org.id);
                println!("The key is shown only this once; store it now.");
            }
        }
        _ => bail!("set both AGENTD_BOOTSTRAP_ORG_ID and AGENTD_BOOTSTRAP_API_KEY, or neither"),
    }
    Ok(())
}
