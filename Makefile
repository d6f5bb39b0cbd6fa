# Convenience wrappers; everything goes through dev.py so that a machine without make works the same way.
PY ?= python3

.PHONY: setup lab test book bench lint strip
setup: ; $(PY) dev.py setup
lab:   ; $(PY) dev.py lab
test:  ; $(PY) dev.py test
book:  ; $(PY) dev.py book
bench: setup ; .venv/bin/python -m anyres_tutorial.bench
lint:  setup ; .venv/bin/python -m ruff check .
strip: setup ; .venv/bin/python -m nbstripout notebooks/*.ipynb
