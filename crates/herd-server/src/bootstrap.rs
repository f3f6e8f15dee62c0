//! First start: an admin user, a global enroll secret and the default configuration. Later starts change
//! nothing here (but rewrite `DATA_DIR/enroll-secret` with the secret in force).

use crate::files::write_private;
use crate::secrets::{generate_password, hash_password, random_token};
use crate::state::now_ms;
use anyhow::{Context, Result, bail};
use herd_core::roles::Role;
use herd_proto::fleet::AppConfig;
use herd_store::{NewUser, Store};
use std::path::Path;

pub struct BootstrapOptions {
    pub admin_email: String,
    pub admin_password: Option<String>,
    pub enroll_secret: Option<String>,
    pub server_url: String,
}

pub enum AdminPassword {
    /// Generated on this start: shown once in the banner.
    Generated(String),
    FromEnvironment,
    /// The admin existed before this start.
    Unchanged,
}

pub struct Bootstrapped {
    pub admin_email: String,
    pub admin_password: AdminPassword,
    /// The first global enroll secret, if any is left.
    pub enroll_secret: Option<String>,
}

pub async fn run(store: &Store, data_dir: &Path, options: BootstrapOptions) -> Result<Bootstrapped> {
    let now = now_ms();
    let mut config = AppConfig::default();
    config.server_settings.server_url = options.server_url.clone();
    config.org_info.org_name = "herd".into();
    let first_secret = match options.enroll_secret {
        Some(secret) => {
            herd_core::validate::enroll_secret(&secret)
                .map_err(|r| anyhow::anyhow!("HERD_BOOTSTRAP_ENROLL_SECRET: {r}"))?;
            secret
        }
        None => random_token(24),
    };
    // The configuration and the first secret commit together (only on the first start: an admin who later
    // removes every global secret means it), so a server starting beside the first one finds both.
    store.init_app_config(&serde_json::to_value(&config)?, &first_secret, now).await?;
    store.ensure_builtin_labels(now).await?;

    let admin_password = if store.user_count().await? == 0 {
        herd_core::validate::email(&options.admin_email)
            .map_err(|r| anyhow::anyhow!("HERD_BOOTSTRAP_ADMIN_EMAIL: {r}"))?;
        let (password, shown) = match options.admin_password {
            Some(password) => {
                if let Err(reason) = herd_core::validate::password(&password) {
                    bail!("HERD_BOOTSTRAP_ADMIN_PASSWORD: {reason}");
                }
                (password, AdminPassword::FromEnvironment)
            }
            None => {
                let password = generate_password();
                (password.clone(), AdminPassword::Generated(password))
            }
        };
        let hash = hash_password(&password).map_err(|e| anyhow::anyhow!("hashing the admin password: {e}"))?;
        let admin = NewUser {
            name: "Admin".into(),
            email: options.admin_email.clone(),
            password_hash: hash,
            global_role: Some(Role::Admin),
            team_roles: Vec::new(),
            api_only: false,
            force_password_reset: false,
        };
        match store.create_user(&admin, now).await {
            Ok(_) => shown,
            // Another server of the cluster bootstrapped at the same moment.
            Err(herd_store::StoreError::Conflict(_)) => AdminPassword::Unchanged,
            Err(err) => return Err(err).context("creating the bootstrap admin"),
        }
    } else {
        AdminPassword::Unchanged
    };

    // Every server writes the file from the database, whichever created the secret.
    let secret_file = data_dir.join("enroll-secret");
    let enroll_secret = store.enroll_secrets(None).await?.into_iter().next().map(|s| s.secret);
    match &enroll_secret {
        Some(secret) => write_private(&secret_file, secret.as_bytes())?,
        None if secret_file.exists() => std::fs::remove_file(&secret_file)?,
        None => {}
    }
    Ok(Bootstrapped { admin_email: options.admin_email.trim().to_lowercase(), admin_password, enroll_secret })
}
