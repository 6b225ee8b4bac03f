"""``python -m cropai.cli``: how the stack starts ``cropai serve``, and the tests any command."""

from cropai.cli import main

main()
