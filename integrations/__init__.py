"""obskit.integrations: hooks into frameworks and servers, each enabled only when its library imports."""
