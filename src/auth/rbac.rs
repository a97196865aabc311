//! Roles and permissions, deny by default. The table maps role names to permissions; the
//! built-in mapping is DESIGN.md's and each role can be redefined in configuration. Roles come from
//! the user store on every call, so a change applies on the next call.

use std::collections::{BTreeMap, HashMap, HashSet};

/// Something a caller may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    SessionCreate,
    SessionReadOwn,
    SessionReadAll,
    SessionDeleteOwn,
    SessionDeleteAll,
    SessionRefresh,
    ContextCreate,
    ContextUse,
    ContextClose,
    ContextEvaluate,
}

impl Permission {
    pub const ALL: [Permission; 10] = [
        Permission::SessionCreate,
        Permission::SessionReadOwn,
        Permission::SessionReadAll,
        Permission::SessionDeleteOwn,
        Permission::SessionDeleteAll,
        Permission::SessionRefresh,
        Permission::ContextCreate,
        Permission::ContextUse,
        Permission::ContextClose,
        Permission::ContextEvaluate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Permission::SessionCreate => "session:create",
            Permission::SessionReadOwn => "session:read:own",
            Permission::SessionReadAll => "session:read:all",
            Permission::SessionDeleteOwn => "session:delete:own",
            Permission::SessionDeleteAll => "session:delete:all",
            Permission::SessionRefresh => "session:refresh",
            Permission::ContextCreate => "context:create",
            Permission::ContextUse => "context:use",
            Permission::ContextClose => "context:close",
            Permission::ContextEvaluate => "context:evaluate",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// Role name → permissions.
#[derive(Debug, Clone)]
pub struct RoleTable {
    roles: HashMap<String, HashSet<Permission>>,
}

impl Default for RoleTable {
    fn default() -> Self {
        use Permission::*;
        let base = [
            SessionCreate,
            SessionReadOwn,
            SessionDeleteOwn,
            SessionRefresh,
        ];
        let user: Vec<_> = base
            .into_iter()
            .chain([ContextCreate, ContextUse, ContextClose])
            .collect();
        let admin: Vec<_> = Permission::ALL.to_vec();
        let roles = [
            ("admin".to_owned(), admin.into_iter().collect()),
            ("user".to_owned(), user.into_iter().collect()),
            ("viewer".to_owned(), base.into_iter().collect()),
        ];
        Self {
            roles: roles.into_iter().collect(),
        }
    }
}

impl RoleTable {
    /// The built-in table with the configured roles replacing (or adding to) its entries.
    pub fn from_config(overrides: &BTreeMap<String, Vec<String>>) -> Result<Self, String> {
        let mut table = Self::default();
        for (role, names) in overrides {
            let permissions = names
                .iter()
                .map(|name| {
                    Permission::parse(name).ok_or_else(|| {
                        format!(
                            "role `{role}` names unknown permission `{name}` (known: {})",
                            Permission::ALL.map(Permission::name).join(", ")
                        )
                    })
                })
                .collect::<Result<HashSet<_>, _>>()?;
            table.roles.insert(role.clone(), permissions);
        }
        Ok(table)
    }

    /// Whether any of `roles` grants `permission`. Unknown roles grant nothing.
    pub fn allows(&self, roles: &[String], permission: Permission) -> bool {
        roles.iter().any(|role| {
            self.roles
                .get(role)
                .is_some_and(|set| set.contains(&permission))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn builtin_table_matches_design() {
        let table = RoleTable::default();
        assert!(table.allows(&roles(&["admin"]), Permission::ContextEvaluate));
        assert!(table.allows(&roles(&["user"]), Permission::ContextUse));
        assert!(!table.allows(&roles(&["user"]), Permission::ContextEvaluate));
        assert!(!table.allows(&roles(&["user"]), Permission::SessionReadAll));
        assert!(table.allows(&roles(&["viewer"]), Permission::SessionRefresh));
        assert!(!table.allows(&roles(&["viewer"]), Permission::ContextCreate));
    }

    #[test]
    fn deny_by_default() {
        let table = RoleTable::default();
        assert!(!table.allows(&roles(&[]), Permission::SessionCreate));
        assert!(!table.allows(&roles(&["superuser"]), Permission::SessionCreate));
    }

    #[test]
    fn configured_roles_replace_builtin() -> Result<(), String> {
        let mut overrides = BTreeMap::new();
        overrides.insert("user".to_owned(), vec!["session:create".to_owned()]);
        let table = RoleTable::from_config(&overrides)?;
        assert!(!table.allows(&roles(&["user"]), Permission::ContextUse));
        overrides.insert("user".to_owned(), vec!["context:fly".to_owned()]);
        assert!(RoleTable::from_config(&overrides).is_err());
        Ok(())
    }
}
