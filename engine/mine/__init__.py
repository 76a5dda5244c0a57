"""barsafe mine: draft rule files from Linux driver C source.

The stages, each its own module, each reading only the one before it:

  cfront   C -> syntax trees (tree-sitter with the tree-sitter-c grammar)
  kbuild   which C files make up a driver's module (its Makefile)
  index    a module's files, the headers they include, lookups by name
  values   C expressions -> sets of constants (or the reason they are not)
  extract  syntax trees -> facts (facts.py): drivers, IDs, MSI-X, BAR dependencies
  emit     facts -> rule AST (engine/rules/ast.py) -> text (engine/rules/fmt.py)
  run      a whole tree, module by module, in worker processes

Nothing in the rule language or the CLI is imported from here except by `emit`
(the AST and the formatter) and the CLI (which calls `run` and `emit`).
"""
