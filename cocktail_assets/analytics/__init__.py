"""Published analytics: ingredient-usage, recipe-complexity, ingredient-tree."""
