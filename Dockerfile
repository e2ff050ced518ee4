# The hook server: a small, non-root image (python:3.11-slim, no build tools at run time).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY hooks ./hooks
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
LABEL org.opencontainers.image.title="elastic-jupyter-hooks" \
      org.opencontainers.image.description="Metacontroller hooks for JupyterGateway and JupyterNotebook"
COPY --from=build /install /usr/local
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["python", "-m", "hooks"]
CMD ["serve", "--host=0.0.0.0", "--port=8080"]
