from django import template

register = template.Library()


@register.filter
def get_item(mapping: dict, key):
    return mapping.get(key) if mapping else None


@register.filter
def readable_names(values) -> str:
    """['light_brown', 'blue_grey'] -> 'light brown, blue-grey' for display."""
    names = {"blue_grey": "blue-grey"}
    return ", ".join(names.get(v, str(v).replace("_", " ")) for v in values or [])
