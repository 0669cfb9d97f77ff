//! `lb-dfaas lb-install`: puts the lb plugin package, this binary and the
//! bundled playbooks into the user plugin directory of an lb installation,
//! then asks that lb which plugin it resolves each of the package's
//! workload names ([`REGISTERED_NAMES`]) to.
//!
//! lb loads user plugins from `<lb_plugins>/plugins/_user/` and its set-up
//! playbook ships that whole package to every target, so one install on
//! the controller reaches every target. The plugin directory is
//! `_user/lb_dfaas_plugin/`; lb's loader finds the package's `plugin.py`
//! in it and imports it as `lb_dfaas_plugin.plugin`:
//!
//! ```text
//! lb_dfaas_plugin/lb_dfaas_plugin/     the package (embedded in this binary):
//!                                      __init__, binary, context, generator, plugin
//! lb_dfaas_plugin/bin/lb-dfaas         a copy of this binary
//! lb_dfaas_plugin/bin/libduckdb.so     the DuckDB library it runs with (found
//!                                      beside the binary through its `$ORIGIN` rpath)
//! lb_dfaas_plugin/ansible/             the bundled playbooks
//! ```
//!
//! The new tree is built beside the old one under a name lb skips
//! (`_`-prefixed) and swapped in with renames, so an interrupted install
//! leaves either the old plugin or the new one, never half of one. Running
//! it again with the same binary changes nothing and says so.
//!
//! It must not touch anything outside that plugin directory, and never
//! runs a shell: Python is started with an argument vector.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;
use serde_json::Value;

use crate::report::CommandError;

/// Name of the plugin directory under `_user/`, and of the package in it.
pub(crate) const PLUGIN_DIR_NAME: &str = "lb_dfaas_plugin";

/// The workload names the package registers (its `PLUGINS`: lb's `dfaas`
/// and `peva_faas`, both run by this binary), each checked to resolve to it
/// after the install; `dfaas` first.
pub(crate) const REGISTERED_NAMES: &[&str] = &["dfaas", "peva_faas"];

/// The package's modules, relative to the plugin directory.
const PACKAGE_FILES: &[(&str, &str)] = &[
    (
        "lb_dfaas_plugin/__init__.py",
        include_str!("../integrations/lb/lb_dfaas_plugin/__init__.py"),
    ),
    (
        "lb_dfaas_plugin/binary.py",
        include_str!("../integrations/lb/lb_dfaas_plugin/binary.py"),
    ),
    (
        "lb_dfaas_plugin/context.py",
        include_str!("../integrations/lb/lb_dfaas_plugin/context.py"),
    ),
    (
        "lb_dfaas_plugin/generator.py",
        include_str!("../integrations/lb/lb_dfaas_plugin/generator.py"),
    ),
    (
        "lb_dfaas_plugin/plugin.py",
        include_str!("../integrations/lb/lb_dfaas_plugin/plugin.py"),
    ),
];

/// Where to install and how to check it.
#[derive(Debug, Clone)]
pub(crate) struct InstallOptions {
    /// A directory holding lb's `lb_plugins` package (lb's source tree or a
    /// site-packages directory), or the `lb_plugins` directory itself.
    /// `None`: ask `python` where it imports `lb_plugins` from.
    pub lb_root: Option<PathBuf>,
    /// The Python that runs lb (used to find lb and for the check).
    pub python: PathBuf,
    /// This binary, copied as `bin/lb-dfaas`.
    pub binary: PathBuf,
    /// Shared libraries the binary needs at run time (`libduckdb.so`),
    /// copied beside it into `bin/`.
    pub libraries: Vec<PathBuf>,
    /// The bundled `ansible/` directory.
    pub ansible_dir: PathBuf,
}

/// What `lb-install` prints.
#[derive(Debug, Serialize)]
pub(crate) struct InstallReport {
    pub ok: bool,
    /// The `lb_plugins` package that was installed into.
    pub lb_plugins: PathBuf,
    pub plugin_dir: PathBuf,
    /// False when the installed tree was already identical.
    pub changed: bool,
    /// The file lb loads its `dfaas` plugin from, after the install.
    pub dfaas_resolves_to: PathBuf,
    /// The same for every name in [`REGISTERED_NAMES`].
    pub resolves_to: BTreeMap<String, PathBuf>,
    pub version: &'static str,
    pub warnings: Vec<String>,
}

/// Installs and checks. Errors: bad `--lb-root` → invalid input (2); lb
/// not importable, a file that cannot be written, or lb resolving one of
/// [`REGISTERED_NAMES`] to another plugin → environment (3).
pub(crate) fn install(options: &InstallOptions) -> Result<InstallReport, CommandError> {
    let lb_plugins = match &options.lb_root {
        Some(root) => lb_plugins_under(root)?,
        None => lb_plugins_from_python(&options.python)?,
    };
    let user_dir = lb_plugins.join("plugins").join("_user");
    let plugin_dir = user_dir.join(PLUGIN_DIR_NAME);
    let wanted = wanted_tree(options)?;
    let changed = !tree_matches(&plugin_dir, &wanted);
    if changed {
        fs::create_dir_all(&user_dir).map_err(|e| io_error("create", &user_dir, &e))?;
        replace_tree(&user_dir, &plugin_dir, &wanted)?;
    }
    let mut warnings = Vec::new();
    if std::env::var_os("LB_USER_PLUGIN_DIR").is_some_and(|v| !v.is_empty()) {
        warnings.push(
            "LB_USER_PLUGIN_DIR is set: lb on this machine loads user plugins from there, not \
             from the directory installed into (targets still get this one)"
                .to_string(),
        );
    }
    let resolves_to = resolved_plugin_files(&options.python, &lb_plugins)?;
    let package = plugin_dir.join(PLUGIN_DIR_NAME);
    for (name, file) in &resolves_to {
        if !is_inside(file, &package) {
            return Err(environment(
                format!(
                    "lb at {} resolves `{name}` to {}, not to the installed package {}",
                    lb_plugins.display(),
                    file.display(),
                    package.display()
                ),
                serde_json::json!({"lb_plugins": lb_plugins, "name": name, "resolved": file}),
            ));
        }
    }
    let dfaas_resolves_to = resolves_to.get("dfaas").cloned().unwrap_or_default();
    Ok(InstallReport {
        ok: true,
        lb_plugins,
        plugin_dir,
        changed,
        dfaas_resolves_to,
        resolves_to,
        version: env!("CARGO_PKG_VERSION"),
        warnings,
    })
}

/// `root/lb_plugins`, or `root` itself when it is the package.
fn lb_plugins_under(root: &Path) -> Result<PathBuf, CommandError> {
    let candidates = [root.join("lb_plugins"), root.to_path_buf()];
    candidates
        .into_iter()
        .find(|dir| dir.join("__init__.py").is_file() && dir.join("plugins").is_dir())
        .map(|dir| fs::canonicalize(&dir).unwrap_or(dir))
        .ok_or_else(|| {
            CommandError::input(
                "--lb-root",
                format!(
                    "{} holds no lb_plugins package (looked for {0}/lb_plugins/__init__.py \
                     and {0}/__init__.py with a plugins/ directory)",
                    root.display()
                ),
            )
        })
}

const FIND_LB: &str =
    "import os, lb_plugins\nprint(os.path.dirname(os.path.abspath(lb_plugins.__file__)))";

fn lb_plugins_from_python(python: &Path) -> Result<PathBuf, CommandError> {
    let stdout = run_python(python, FIND_LB, &[], None).map_err(|reason| {
        environment(
            format!(
                "cannot find lb: {} cannot import lb_plugins ({reason}); give --python (lb's \
                 interpreter) or --lb-root DIR",
                python.display()
            ),
            serde_json::json!({"python": python}),
        )
    })?;
    let dir = PathBuf::from(stdout.trim());
    lb_plugins_under(&dir).map_err(|_| {
        environment(
            format!(
                "{} imports lb_plugins from {}, which is not lb's plugin package",
                python.display(),
                dir.display()
            ),
            serde_json::json!({"python": python, "lb_plugins": dir}),
        )
    })
}

/// Asks lb's registry (as lb builds it, with the default user plugin
/// directory) which file each name given as an argument comes from:
/// `{"files": {name: path or null}}`.
const RESOLVE_NAMES: &str = r#"
import inspect, json, os, sys
os.environ.pop("LB_USER_PLUGIN_DIR", None)
from lb_plugins.api import create_registry
registry = create_registry()
files = {}
for name in sys.argv[1:]:
    try:
        plugin = registry.get(name)
    except KeyError:
        files[name] = None
        continue
    module = sys.modules.get(type(plugin).__module__)
    path = getattr(module, "__file__", None) or inspect.getfile(type(plugin))
    files[name] = os.path.abspath(path)
print(json.dumps({"files": files}))
"#;

/// The file lb loads each of [`REGISTERED_NAMES`] from; a name lb does not
/// know is an error.
fn resolved_plugin_files(
    python: &Path,
    lb_plugins: &Path,
) -> Result<BTreeMap<String, PathBuf>, CommandError> {
    let search_root = lb_plugins.parent().unwrap_or(lb_plugins);
    let stdout = run_python(python, RESOLVE_NAMES, REGISTERED_NAMES, Some(search_root)).map_err(
        |reason| {
            environment(
                format!("installed, but lb could not be asked which plugins it loads: {reason}"),
                serde_json::json!({"python": python, "lb_plugins": lb_plugins}),
            )
        },
    )?;
    let last = stdout.lines().last().unwrap_or_default();
    let unexpected = || {
        environment(
            format!("unexpected answer from lb's registry: {last:?}"),
            serde_json::json!({"python": python}),
        )
    };
    let answer: Value = serde_json::from_str(last).map_err(|_| unexpected())?;
    let files = answer
        .get("files")
        .and_then(Value::as_object)
        .ok_or_else(unexpected)?;
    let mut resolved = BTreeMap::new();
    for name in REGISTERED_NAMES {
        let file = files.get(*name).and_then(Value::as_str).ok_or_else(|| {
            environment(
                format!(
                    "lb at {} has no plugin named `{name}` after the install",
                    lb_plugins.display()
                ),
                serde_json::json!({"lb_plugins": lb_plugins, "name": name}),
            )
        })?;
        resolved.insert((*name).to_string(), PathBuf::from(file));
    }
    Ok(resolved)
}

/// Runs `python -c code args...`, with `path` first on PYTHONPATH; stdout
/// on success, else a reason with the last stderr line.
fn run_python(
    python: &Path,
    code: &str,
    args: &[&str],
    path: Option<&Path>,
) -> Result<String, String> {
    let mut command = Command::new(python);
    command.arg("-c").arg(code).args(args);
    if let Some(path) = path {
        let mut paths = vec![path.to_path_buf()];
        if let Some(existing) = std::env::var_os("PYTHONPATH") {
            paths.extend(std::env::split_paths(&existing));
        }
        if let Ok(joined) = std::env::join_paths(paths) {
            command.env("PYTHONPATH", joined);
        }
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    Err(format!("{}: {last}", output.status))
}

/// One file of the plugin tree: path relative to the plugin directory,
/// contents, executable or not.
struct TreeFile {
    relative: PathBuf,
    contents: Vec<u8>,
    executable: bool,
}

fn wanted_tree(options: &InstallOptions) -> Result<Vec<TreeFile>, CommandError> {
    let mut files: Vec<TreeFile> = PACKAGE_FILES
        .iter()
        .map(|(name, text)| TreeFile {
            relative: PathBuf::from(name),
            contents: text.as_bytes().to_vec(),
            executable: false,
        })
        .collect();
    let binary = fs::read(&options.binary).map_err(|e| io_error("read", &options.binary, &e))?;
    files.push(TreeFile {
        relative: PathBuf::from("bin").join("lb-dfaas"),
        contents: binary,
        executable: true,
    });
    for library in &options.libraries {
        let Some(name) = library.file_name() else {
            continue;
        };
        files.push(TreeFile {
            relative: PathBuf::from("bin").join(name),
            contents: fs::read(library).map_err(|e| io_error("read", library, &e))?,
            executable: false,
        });
    }
    if !options.ansible_dir.join("setup_global.yml").is_file() {
        return Err(environment(
            format!(
                "the bundled playbooks are not at {} (set LB_DFAAS_HOME to the directory \
                 holding ansible/)",
                options.ansible_dir.display()
            ),
            serde_json::json!({"ansible_dir": options.ansible_dir}),
        ));
    }
    collect_dir(&options.ansible_dir, Path::new("ansible"), &mut files)?;
    files.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(files)
}

/// Regular files under `dir` (symlinks followed only when they point at
/// regular files; caches and hidden files skipped).
fn collect_dir(dir: &Path, relative: &Path, files: &mut Vec<TreeFile>) -> Result<(), CommandError> {
    let entries = fs::read_dir(dir).map_err(|e| io_error("read", dir, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error("read", dir, &e))?;
        let name = entry.file_name();
        let name_text = name.to_string_lossy();
        if name_text.starts_with('.') || name_text == "__pycache__" {
            continue;
        }
        let path = entry.path();
        let metadata = fs::metadata(&path).map_err(|e| io_error("read", &path, &e))?;
        if metadata.is_dir() {
            collect_dir(&path, &relative.join(&name), files)?;
        } else if metadata.is_file() {
            files.push(TreeFile {
                relative: relative.join(&name),
                contents: fs::read(&path).map_err(|e| io_error("read", &path, &e))?,
                executable: false,
            });
        }
    }
    Ok(())
}

/// Whether `dir` holds exactly `files` (same names, bytes and exec bits).
fn tree_matches(dir: &Path, files: &[TreeFile]) -> bool {
    let mut present = Vec::new();
    if collect_dir(dir, Path::new(""), &mut present).is_err() {
        return false;
    }
    present.sort_by(|a, b| a.relative.cmp(&b.relative));
    present.len() == files.len()
        && present.iter().zip(files).all(|(have, want)| {
            have.relative == want.relative
                && have.contents == want.contents
                && is_executable(&dir.join(&have.relative)) == want.executable
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

/// Writes `files` into a staging directory lb ignores (`_`-prefixed), then
/// swaps it in place of `plugin_dir` with two renames.
fn replace_tree(
    user_dir: &Path,
    plugin_dir: &Path,
    files: &[TreeFile],
) -> Result<(), CommandError> {
    use std::os::unix::fs::PermissionsExt;
    let pid = std::process::id();
    let staging = user_dir.join(format!("_{PLUGIN_DIR_NAME}.new-{pid}"));
    let retired = user_dir.join(format!("_{PLUGIN_DIR_NAME}.old-{pid}"));
    let _ = fs::remove_dir_all(&staging);
    for file in files {
        let path = staging.join(&file.relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| io_error("create", parent, &e))?;
        }
        fs::write(&path, &file.contents).map_err(|e| io_error("write", &path, &e))?;
        let mode = if file.executable { 0o755 } else { 0o644 };
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .map_err(|e| io_error("set the mode of", &path, &e))?;
    }
    let had_old = fs::symlink_metadata(plugin_dir).is_ok();
    if had_old {
        fs::rename(plugin_dir, &retired).map_err(|e| io_error("move aside", plugin_dir, &e))?;
    }
    if let Err(e) = fs::rename(&staging, plugin_dir) {
        if had_old {
            let _ = fs::rename(&retired, plugin_dir);
        }
        return Err(io_error("install", plugin_dir, &e));
    }
    if had_old {
        let _ = fs::remove_dir_all(&retired);
    }
    Ok(())
}

/// Whether `file` exists under `dir` (both resolved).
fn is_inside(file: &Path, dir: &Path) -> bool {
    match (fs::canonicalize(file), fs::canonicalize(dir)) {
        (Ok(file), Ok(dir)) => file.starts_with(dir),
        _ => false,
    }
}

fn environment(message: String, context: Value) -> CommandError {
    CommandError::Environment { message, context }
}

fn io_error(action: &str, path: &Path, error: &std::io::Error) -> CommandError {
    environment(
        format!("cannot {action} {}: {error}", path.display()),
        serde_json::json!({"path": path}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(dir: &Path) -> InstallOptions {
        let binary = dir.join("lb-dfaas");
        fs::write(&binary, b"binary").unwrap();
        let library = dir.join("libduckdb.so");
        fs::write(&library, b"library").unwrap();
        let ansible = dir.join("ansible");
        fs::create_dir_all(ansible.join("collect")).unwrap();
        fs::write(ansible.join("setup_global.yml"), b"---\n").unwrap();
        fs::write(ansible.join("collect").join("post.yml"), b"---\n").unwrap();
        fs::create_dir_all(ansible.join("__pycache__")).unwrap();
        fs::write(ansible.join("__pycache__").join("x.pyc"), b"x").unwrap();
        InstallOptions {
            lb_root: None,
            python: PathBuf::from("python3"),
            binary,
            libraries: vec![library],
            ansible_dir: ansible,
        }
    }

    #[test]
    fn the_tree_holds_the_package_the_binary_and_the_playbooks() {
        let dir = tempfile::tempdir().unwrap();
        let files = wanted_tree(&options(dir.path())).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| f.relative.display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "ansible/collect/post.yml",
                "ansible/setup_global.yml",
                "bin/lb-dfaas",
                "bin/libduckdb.so",
                "lb_dfaas_plugin/__init__.py",
                "lb_dfaas_plugin/binary.py",
                "lb_dfaas_plugin/context.py",
                "lb_dfaas_plugin/generator.py",
                "lb_dfaas_plugin/plugin.py",
            ]
        );
        assert!(
            files
                .iter()
                .find(|f| f.relative.ends_with("lb-dfaas"))
                .unwrap()
                .executable
        );
    }

    #[test]
    fn every_module_of_the_package_is_embedded_as_it_is() {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("integrations/lb");
        let mut modules: Vec<String> = fs::read_dir(source.join(PLUGIN_DIR_NAME))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".py"))
            .map(|name| format!("{PLUGIN_DIR_NAME}/{name}"))
            .collect();
        modules.sort();
        let embedded: Vec<&str> = PACKAGE_FILES.iter().map(|(name, _)| *name).collect();
        assert_eq!(embedded, modules);
        for (name, text) in PACKAGE_FILES {
            assert_eq!(
                fs::read_to_string(source.join(name)).unwrap(),
                *text,
                "{name}"
            );
        }
    }

    #[test]
    fn replacing_is_complete_and_a_second_time_finds_nothing_to_change() {
        let dir = tempfile::tempdir().unwrap();
        let files = wanted_tree(&options(dir.path())).unwrap();
        let user = dir.path().join("_user");
        let plugin = user.join(PLUGIN_DIR_NAME);
        fs::create_dir_all(plugin.join("stale")).unwrap();
        fs::write(plugin.join("stale").join("old.py"), b"old").unwrap();
        assert!(!tree_matches(&plugin, &files));
        replace_tree(&user, &plugin, &files).unwrap();
        assert!(tree_matches(&plugin, &files));
        assert!(!plugin.join("stale").exists());
        assert!(is_executable(&plugin.join("bin").join("lb-dfaas")));
        let leftovers: Vec<_> = fs::read_dir(&user)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, [PLUGIN_DIR_NAME]);
    }

    #[test]
    fn an_lb_root_without_lb_plugins_is_invalid_input_naming_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let error = lb_plugins_under(dir.path()).unwrap_err();
        assert_eq!(error.exit_code(), crate::protocol::ExitCode::InvalidInput);
        assert!(error.to_string().starts_with("--lb-root: "), "{error}");
        let package = dir.path().join("lb_plugins");
        fs::create_dir_all(package.join("plugins")).unwrap();
        fs::write(package.join("__init__.py"), b"").unwrap();
        assert_eq!(
            lb_plugins_under(dir.path()).unwrap(),
            fs::canonicalize(&package).unwrap()
        );
        assert_eq!(
            lb_plugins_under(&package).unwrap(),
            fs::canonicalize(&package).unwrap()
        );
    }
}
