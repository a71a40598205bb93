/** Logs two lines as a role does, for test/logs-format.test.ts: `node --import tsx test/support/log-lines.ts`. */
import { createLogger } from '../../src/core/logger.ts';

const logger = createLogger('processor');
logger.info({ report: 'revenue', password: 'hunter2' }, 'revision written');
logger.warn('ClickHouse slow');
