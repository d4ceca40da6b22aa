"""The cocktail spaces: rollup, neighbour structures, the EM fit, UMAPs and similarity."""
