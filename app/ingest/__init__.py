"""Pure parsers that turn every arXiv wire format into `PaperRecord`s."""
