FROM python:3.11-slim
WORKDIR /srv/papershelf
COPY pyproject.toml README.md ./
COPY app app
COPY workers workers
COPY ml ml
COPY migrations migrations
COPY templates templates
RUN pip install --no-cache-dir -e .
EXPOSE 8000
CMD ["papershelf", "serve", "--host", "0.0.0.0", "--port", "8000"]
