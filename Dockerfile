FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY . .
ENV NODE_ENV=production TIDEMARK_HTTP_HOST=0.0.0.0
ENTRYPOINT ["node", "bin/tidemark.mjs"]
