//! Importing the WSGI callable at start-up, so that a broken app fails the start, not the first
//! request. Failures carry Python's traceback text for the operator.

use std::path::{Path, PathBuf};

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::config::{WsgiSpec, DEFAULT_CALLABLES};
use crate::error::Error;

/// Imports the module or file of `spec` and returns its callable. `pythonpath` goes in front of
/// `sys.path` first.
pub(crate) fn load_callable(
    py: Python<'_>,
    spec: &WsgiSpec,
    pythonpath: &[PathBuf],
) -> Result<Py<PyAny>, Error> {
    let fail = |traceback: String| Error::Import {
        spec: spec.to_string(),
        traceback,
    };
    let module = import(py, spec, pythonpath).map_err(|e| fail(format_exception(py, &e)))?;
    let (name, obj) = match spec.callable() {
        Some(name) => (name, attribute_path(&module, name)),
        None => DEFAULT_CALLABLES
            .iter()
            .map(|name| (*name, module.getattr(*name)))
            .find(|(_, found)| found.is_ok())
            .unwrap_or((DEFAULT_CALLABLES[0], Err(missing_default(py)))),
    };
    let obj = obj.map_err(|e| fail(format_exception(py, &e)))?;
    if !obj.is_callable() {
        return Err(fail(format!(
            "{name} is a {}, not a callable",
            obj.get_type()
                .name()
                .map_or_else(|_| "?".into(), |n| n.to_string())
        )));
    }
    Ok(obj.unbind())
}

fn missing_default(py: Python<'_>) -> PyErr {
    let _ = py;
    pyo3::exceptions::PyAttributeError::new_err(format!(
        "the module has neither `{}` nor `{}`; name the callable as MODULE:CALLABLE",
        DEFAULT_CALLABLES[0], DEFAULT_CALLABLES[1]
    ))
}

fn attribute_path<'py>(module: &Bound<'py, PyAny>, path: &str) -> PyResult<Bound<'py, PyAny>> {
    path.split('.')
        .try_fold(module.clone(), |obj, part| obj.getattr(part))
}

fn import<'py>(
    py: Python<'py>,
    spec: &WsgiSpec,
    pythonpath: &[PathBuf],
) -> PyResult<Bound<'py, PyAny>> {
    let sys_path = py.import("sys")?.getattr("path")?.cast_into::<PyList>()?;
    match spec {
        WsgiSpec::Module { module, .. } => {
            let cwd = std::env::current_dir()?;
            prepend_paths(
                &sys_path,
                pythonpath
                    .iter()
                    .map(PathBuf::as_path)
                    .chain([cwd.as_path()]),
            )?;
            Ok(py.import(module.as_str())?.into_any())
        }
        WsgiSpec::File { path, .. } => {
            let file = path.canonicalize().map_err(|e| {
                pyo3::exceptions::PyFileNotFoundError::new_err(format!("{}: {e}", path.display()))
            })?;
            let dir = file.parent().unwrap_or(Path::new("/"));
            prepend_paths(
                &sys_path,
                pythonpath.iter().map(PathBuf::as_path).chain([dir]),
            )?;
            exec_file(py, &file)
        }
    }
}

/// Puts `dirs` at the front of `sys.path` in their order, skipping those already there.
fn prepend_paths<'a>(
    sys_path: &Bound<'_, PyList>,
    dirs: impl Iterator<Item = &'a Path>,
) -> PyResult<()> {
    let mut at = 0;
    for dir in dirs {
        let dir = std::path::absolute(dir)?;
        let text = dir.to_string_lossy();
        if sys_path.contains(text.as_ref())? {
            continue;
        }
        sys_path.insert(at, text.as_ref())?;
        at += 1;
    }
    Ok(())
}

/// Runs a `.py` file as a module registered in `sys.modules` (frameworks such as Flask look their
/// import name up there to find their root directory). A file already loaded is not run again.
fn exec_file<'py>(py: Python<'py>, file: &Path) -> PyResult<Bound<'py, PyAny>> {
    let modules = py.import("sys")?.getattr("modules")?;
    let name = match module_name(&modules, file)? {
        Named::Loaded(module) => return Ok(module),
        Named::Free(name) => name,
    };
    let util = py.import("importlib.util")?;
    let spec = util.call_method1("spec_from_file_location", (&name, file))?;
    if spec.is_none() {
        return Err(pyo3::exceptions::PyImportError::new_err(format!(
            "cannot load {} as a module",
            file.display()
        )));
    }
    let module = util.call_method1("module_from_spec", (&spec,))?;
    modules.set_item(&name, &module)?;
    let loaded = spec
        .getattr("loader")?
        .call_method1("exec_module", (&module,));
    if let Err(e) = loaded {
        let _ = modules.del_item(&name);
        return Err(e);
    }
    Ok(module)
}

enum Named<'py> {
    /// The file is loaded already, as this module.
    Loaded(Bound<'py, PyAny>),
    /// A module name not in use.
    Free(String),
}

/// The file's stem when it is a free module name (or the module already loaded from this file),
/// else a name derived from the whole path.
fn module_name<'py>(modules: &Bound<'py, PyAny>, file: &Path) -> PyResult<Named<'py>> {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let identifier = stem
        .chars()
        .next()
        .is_some_and(|c| c == '_' || c.is_alphabetic())
        && stem.chars().all(|c| c == '_' || c.is_alphanumeric());
    let mangled: String = file
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let mangled = format!("_gatehouse_wsgi{mangled}");
    for name in [stem.as_str(), mangled.as_str()] {
        if name == stem && !identifier {
            continue;
        }
        let Ok(existing) = modules.get_item(name) else {
            return Ok(Named::Free(name.to_owned()));
        };
        let same_file = existing
            .getattr("__file__")
            .and_then(|f| f.extract::<PathBuf>())
            .is_ok_and(|f| f == file);
        if same_file {
            return Ok(Named::Loaded(existing));
        }
    }
    Ok(Named::Free(mangled))
}

/// Python's own rendering of an exception with its traceback.
pub(crate) fn format_exception(py: Python<'_>, err: &PyErr) -> String {
    let formatted = py.import("traceback").and_then(|tb| {
        let args = PyTuple::new(
            py,
            [
                err.get_type(py).into_any(),
                err.value(py).clone().into_any(),
                err.traceback(py)
                    .map_or_else(|| py.None().into_bound(py), Bound::into_any),
            ],
        )?;
        let lines = tb.call_method1("format_exception", args)?;
        lines.extract::<Vec<String>>().map(|l| l.concat())
    });
    formatted.unwrap_or_else(|_| err.to_string())
}
