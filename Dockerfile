# syntax=docker/dockerfile:1
# MaskFormer Serve: multi-stage build. Restore runs from the project and props files alone, so the
# restore layer is cached until a dependency changes.
#
# This image runs on the CPU (ONNX Runtime falls back from CUDA and says so in the log and in
# ListModels). The CUDA 13 runtime image is tracked separately; swap the final stage's base for an
# nvidia/cuda 13 runtime with the ASP.NET Core runtime installed to use GPUs.
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY global.json Directory.Build.props Directory.Packages.props MaskFormer.sln ./
COPY protos/ protos/
COPY src/MaskFormer.Contracts/MaskFormer.Contracts.csproj src/MaskFormer.Contracts/
COPY src/MaskFormer.Engine/MaskFormer.Engine.csproj src/MaskFormer.Engine/
COPY src/MaskFormer.Server/MaskFormer.Server.csproj src/MaskFormer.Server/
RUN dotnet restore src/MaskFormer.Server/MaskFormer.Server.csproj
COPY src/ src/
RUN dotnet publish src/MaskFormer.Server/MaskFormer.Server.csproj -c Release --no-restore -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime
WORKDIR /app
COPY --from=build /app ./
COPY models/ /app/models/
ENV ASPNETCORE_ENVIRONMENT=Production \
    Kestrel__Endpoints__Grpc__Url=http://0.0.0.0:5081 \
    MaskFormer__Models__Path=/app/models
EXPOSE 5081
USER $APP_UID
ENTRYPOINT ["dotnet", "MaskFormer.Server.dll"]
