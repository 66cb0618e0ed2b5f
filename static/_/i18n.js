// The console's words in Arabic and English; the page's direction follows the language.
const words = {
  en: {
    title: 'Mishkah console', branches: 'Branches', tables: 'Tables', rows: 'rows',
    authOff: 'Authentication is off: anyone who reaches this server can read and change everything (start it with --auth required).',
    authNeeded: 'This server requires an admin token.', token: 'Admin token', signIn: 'Use token',
    table: 'Table', live: 'Live events', health: 'Server health', webhooks: 'Webhooks',
    filter: 'Filter, e.g. seats > 2 && zone = "indoor"', apply: 'Apply', columns: 'Columns',
    first: 'First page', next: 'Next page', insert: 'New row', noRows: 'No rows', count: 'rows match',
    edit: 'Row', save: 'Save', delete: 'Delete', close: 'Close', history: 'History', restore: 'Restore this version',
    confirmDelete: 'Delete this row?', saved: 'Saved: version', conflict: 'Someone changed this row since you opened it',
    mine: 'Your version', theirs: 'Stored version', keepMine: 'Save mine over it', takeTheirs: 'Take the stored one',
    badJson: 'Not valid JSON', pause: 'Pause', resume: 'Resume', allTables: 'All tables', allActions: 'All actions',
    writesPerSec: 'Writes / s', connections: 'Connections', commitMs: 'Commit latency (ms)', fanoutMs: 'Fan-out latency (ms)',
    deliveries: 'Deliveries', deadLetters: 'Dead letters', replay: 'Replay', none: 'None', language: 'العربية',
    created: 'created', changed: 'changed', removed: 'removed', pick: 'Pick a table on the left.',
  },
  ar: {
    title: 'لوحة مشكاة', branches: 'الفروع', tables: 'الجداول', rows: 'صفوف',
    authOff: 'المصادقة معطلة: كل من يصل إلى هذا الخادم يقرأ ويغيّر كل شيء (شغّله بـ --auth required).',
    authNeeded: 'هذا الخادم يطلب رمز مدير.', token: 'رمز المدير', signIn: 'استخدم الرمز',
    table: 'الجدول', live: 'الأحداث الحية', health: 'صحة الخادم', webhooks: 'الخطافات',
    filter: 'مرشح، مثل seats > 2 && zone = "indoor"', apply: 'تطبيق', columns: 'الأعمدة',
    first: 'الصفحة الأولى', next: 'الصفحة التالية', insert: 'صف جديد', noRows: 'لا صفوف', count: 'صفوف مطابقة',
    edit: 'الصف', save: 'حفظ', delete: 'حذف', close: 'إغلاق', history: 'السجل', restore: 'استعادة هذه النسخة',
    confirmDelete: 'أتحذف هذا الصف؟', saved: 'حُفظ: النسخة', conflict: 'غيّر أحدٌ هذا الصف منذ فتحته',
    mine: 'نسختك', theirs: 'النسخة المخزنة', keepMine: 'احفظ نسختي فوقها', takeTheirs: 'خذ المخزنة',
    badJson: 'ليس JSON صالحًا', pause: 'إيقاف مؤقت', resume: 'استئناف', allTables: 'كل الجداول', allActions: 'كل الأفعال',
    writesPerSec: 'كتابات / ث', connections: 'الاتصالات', commitMs: 'زمن الإيداع (مللي ث)', fanoutMs: 'زمن التوزيع (مللي ث)',
    deliveries: 'التسليمات', deadLetters: 'الرسائل الميتة', replay: 'إعادة الإرسال', none: 'لا شيء', language: 'English',
    created: 'أُنشئ', changed: 'تغيّر', removed: 'حُذف', pick: 'اختر جدولًا من القائمة.',
  },
};

let lang = localStorage.getItem('mishkah-console-lang') || (navigator.language?.startsWith('ar') ? 'ar' : 'en');

export const t = (key) => words[lang][key] ?? key;
export const currentLang = () => lang;

/** Sets the language and the page's direction (Arabic right to left). */
export function setLang(next) {
  lang = next;
  localStorage.setItem('mishkah-console-lang', lang);
  document.documentElement.lang = lang;
  document.documentElement.dir = lang === 'ar' ? 'rtl' : 'ltr';
}

/** A bilingual value (`{ar, en}`) in the current language; anything else as text. */
export function label(value) {
  if (value && typeof value === 'object' && !Array.isArray(value) && (value.ar || value.en)) {
    return value[lang] ?? value.en ?? value.ar;
  }
  return typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value ?? '');
}
