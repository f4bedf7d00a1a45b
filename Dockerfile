# syntax=docker/dockerfile:1
# MaskFormer Serve images. Two targets from one file (see docs/deploy.md):
#   docker build --target gpu -t maskformer-serve:<version>-gpu .   NVIDIA CUDA 13 + cuDNN 9 runtime, ONNX Runtime GPU
#   docker build --target cpu -t maskformer-serve:<version>-cpu .   ASP.NET Core runtime, ONNX Runtime CPU (no CUDA provider)
# Both: linux-x64 only, ReadyToRun, non-root (uid 1654), the embedded model in /app/models; mount other
# models under /app/models/<name> (or a whole repository anywhere and set MaskFormer__Models__Path).
#
# CI has no Docker engine: tests/deploy lints this file with dockerfilelint, checks every COPY source
# exists and is not excluded by .dockerignore, and runs the publish-cpu stage's RUN commands verbatim on
# a copy of the build context, then starts the published server on the embedded model. Base images are
# pinned to exact versions; bump them together with global.json and Directory.Packages.props.

# ---- restore inputs: project and props files only, so restore layers are cached until a dependency changes
FROM mcr.microsoft.com/dotnet/sdk:10.0.100-noble AS sources
WORKDIR /src
COPY global.json Directory.Build.props Directory.Packages.props ./
COPY protos/ protos/
COPY src/MaskFormer.Contracts/MaskFormer.Contracts.csproj src/MaskFormer.Contracts/
COPY src/MaskFormer.Engine/MaskFormer.Engine.csproj src/MaskFormer.Engine/
COPY src/MaskFormer.Server/MaskFormer.Server.csproj src/MaskFormer.Server/

# ---- publish with the CUDA-enabled ONNX Runtime
FROM sources AS publish-gpu
RUN dotnet restore src/MaskFormer.Server/MaskFormer.Server.csproj -r linux-x64 -p:PublishReadyToRun=true -p:OnnxRuntimeFlavor=gpu
COPY src/ src/
RUN dotnet publish src/MaskFormer.Server/MaskFormer.Server.csproj -c Release -r linux-x64 --self-contained false --no-restore -p:PublishReadyToRun=true -p:OnnxRuntimeFlavor=gpu -o out

# ---- publish with the CPU-only ONNX Runtime: no CUDA or TensorRT provider libraries at all
FROM sources AS publish-cpu
RUN dotnet restore src/MaskFormer.Server/MaskFormer.Server.csproj -r linux-x64 -p:PublishReadyToRun=true -p:OnnxRuntimeFlavor=cpu
COPY src/ src/
RUN dotnet publish src/MaskFormer.Server/MaskFormer.Server.csproj -c Release -r linux-x64 --self-contained false --no-restore -p:PublishReadyToRun=true -p:OnnxRuntimeFlavor=cpu -o out

# ---- the ASP.NET Core runtime, copied into the CUDA image below (same Ubuntu 24.04 base)
FROM mcr.microsoft.com/dotnet/aspnet:10.0.0-noble AS aspnet

# ---- target gpu
FROM nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04 AS gpu
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3t64 tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 1654 app \
    && useradd --system --uid 1654 --gid app --no-create-home --shell /usr/sbin/nologin app
COPY --from=aspnet /usr/share/dotnet /usr/share/dotnet
WORKDIR /app
COPY --from=publish-gpu /src/out ./
COPY models/tiny-shapes/model.onnx models/tiny-shapes/config.json models/tiny-shapes/preprocessor_config.json models/tiny-shapes/MODEL.md /app/models/tiny-shapes/
ENV DOTNET_ROOT=/usr/share/dotnet \
    PATH=/usr/share/dotnet:$PATH \
    ASPNETCORE_ENVIRONMENT=Production \
    Kestrel__Endpoints__Grpc__Url=http://0.0.0.0:5081 \
    MaskFormer__Models__Path=/app/models \
    MaskFormer__Inference__Devices__0__Name=cuda:0 \
    MaskFormer__Inference__Devices__0__Required=true
EXPOSE 5081
USER 1654
ENTRYPOINT ["dotnet", "MaskFormer.Server.dll"]

# ---- target cpu
FROM mcr.microsoft.com/dotnet/aspnet:10.0.0-noble AS cpu
WORKDIR /app
COPY --from=publish-cpu /src/out ./
COPY models/tiny-shapes/model.onnx models/tiny-shapes/config.json models/tiny-shapes/preprocessor_config.json models/tiny-shapes/MODEL.md /app/models/tiny-shapes/
ENV ASPNETCORE_ENVIRONMENT=Production \
    Kestrel__Endpoints__Grpc__Url=http://0.0.0.0:5081 \
    MaskFormer__Models__Path=/app/models \
    MaskFormer__Inference__Devices__0__Name=cpu
EXPOSE 5081
USER 1654
ENTRYPOINT ["dotnet", "MaskFormer.Server.dll"]
