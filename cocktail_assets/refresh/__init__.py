"""Change tracking queries and the debounced refresh sensor."""
