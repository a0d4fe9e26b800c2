"""MLflow's schema JSON read as "name: type" lines: a dataset's schema (run page) and a logged
model's signature (its MLmodel file, the logged model page)."""

import json


def schema_columns(schema: str) -> list[str]:
    """The columns or tensors in a dataset's schema JSON, each as "name: type": a table's
    ({"mlflow_colspec": [{"name", "type"}]}, from pandas, Spark, ...) or an array's
    ({"mlflow_tensorspec": {"features": "<JSON list>", "targets": ...}}, from NumPy, where each
    part's list is itself JSON text and a tensor reads as "features: float64 [-1, 2]").
    [] for any other schema, which the page then shows as text."""
    try:
        described = json.loads(schema) if schema else {}
        if not isinstance(described, dict):
            return []
        if "mlflow_colspec" in described:
            return spec_names(described["mlflow_colspec"], "")
        tensors = described.get("mlflow_tensorspec")
        if isinstance(tensors, dict):
            return [
                shown
                for part, spec in tensors.items()
                if isinstance(spec, str) and spec
                for shown in spec_names(json.loads(spec), part)
            ]
        return []
    except (ValueError, TypeError, KeyError):
        return []


def signature_columns(specs: str | None) -> list[str]:
    """One part of a model signature (its inputs, outputs or params: a JSON list of column,
    tensor or param specs, as text inside the MLmodel YAML) as "name: type" lines; [] if absent
    or not such a list."""
    try:
        return spec_names(json.loads(specs), "") if isinstance(specs, str) and specs else []
    except (ValueError, TypeError):
        return []


def spec_names(specs: list, part: str) -> list[str]:
    """ "name: type" for each column or param spec, or "name: dtype [shape]" for each tensor
    spec; an unnamed tensor is named by its part of the dataset (features, targets), an unnamed
    column (a model's single output) by its type alone. "(optional)" marks what a model does not
    require; a param shows its default."""
    shown = []
    for spec in specs if isinstance(specs, list) else []:
        if not isinstance(spec, dict):
            continue
        name = spec.get("name") or part
        tensor = spec.get("tensor-spec")
        if isinstance(tensor, dict):
            shape = tensor.get("shape")
            shape_text = f" [{', '.join(str(size) for size in shape)}]" if isinstance(shape, list) else ""
            text = f"{tensor.get('dtype', 'tensor')}{shape_text}"
        elif "type" in spec:
            text = _type_text(spec["type"])
        else:
            continue
        if "default" in spec:
            text += f" = {json.dumps(spec['default'])}"
        if spec.get("required") is False:
            text += " (optional)"
        shown.append(f"{name}: {text}" if name else text)
    return shown


def _type_text(type_spec) -> str:
    """A column's type: a name ("double"), or MLflow's nested description of an array or an
    object ({"type": "array", "items": {"type": "string"}} → "array<string>")."""
    if isinstance(type_spec, str):
        return type_spec
    if isinstance(type_spec, dict):
        kind = type_spec.get("type", "object")
        if kind == "array":
            return f"array<{_type_text(type_spec.get('items'))}>"
        return str(kind)
    return "?"
