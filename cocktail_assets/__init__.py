"""cocktail-assets: the Dagster asset graph that keeps a cocktail site's analytics fresh."""
